// Strict YAML reading with errors that name file:line and the key path.
// Used by every loader (daemon config, scenarios, register maps) so that all of
// them report errors alike: "wuzhai.yaml:41: sites[2].battery.cells: expected an
// integer, got 'twenty'". Unknown keys are errors (a typo must not silently
// change a drill). Errors are collected, not thrown: a loader reports all of them.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/geo.hpp"
#include "core/status.hpp"

namespace sitepower::core {

// Collects errors across a whole document.
class YamlErrors {
 public:
  explicit YamlErrors(std::string file) : file_(std::move(file)) {}
  // Records "<file>:<line>: <path>: <msg>" at the node's position.
  void Add(const YAML::Node& at, const std::string& path, const std::string& msg);
  void AddAtLine(int line_1based, const std::string& path, const std::string& msg);
  bool empty() const { return errors_.empty(); }
  const std::vector<std::string>& errors() const { return errors_; }
  const std::string& file() const { return file_; }
  // OK when empty; else InvalidArgument with every error, one per line.
  Status ToStatus() const;

 private:
  std::string file_;
  std::vector<std::string> errors_;
};

// Parses a file or string; on a syntax error returns InvalidArgument "file:line: ...".
Result<YAML::Node> LoadYamlFile(const std::string& path);
Result<YAML::Node> LoadYamlString(const std::string& text, const std::string& name);

// A mapping node whose keys are checked off as they are read.
class YamlMap {
 public:
  // `path` is the key path of this node ("" for the root, "sites[2]" ...).
  YamlMap(const YAML::Node& node, std::string path, YamlErrors& errors);

  bool valid() const { return valid_; }  // false if the node is not a mapping
  bool Has(const std::string& key) const;
  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  YamlErrors& errors() { return errors_; }
  std::string PathOf(const std::string& key) const;

  // Each getter records an error (and returns nullopt) when the key is required
  // but missing, or present with the wrong type or out of range.
  std::optional<std::string> String(const std::string& key, bool required = false);
  std::optional<double> Number(const std::string& key, bool required = false,
                               std::optional<double> min = std::nullopt,
                               std::optional<double> max = std::nullopt);
  std::optional<long long> Integer(const std::string& key, bool required = false,
                                   std::optional<long long> min = std::nullopt,
                                   std::optional<long long> max = std::nullopt);
  std::optional<bool> Bool(const std::string& key, bool required = false);
  std::optional<std::vector<std::string>> StringList(const std::string& key, bool required = false);
  // "[lat, lon]" in degrees, range-checked.
  std::optional<LatLon> Location(const std::string& key, bool required = false);
  // The raw child (marked as read); an undefined Node when absent.
  YAML::Node Child(const std::string& key, bool required = false);

  // Records an error for every key that no getter asked for.
  void CheckNoUnknownKeys();

 private:
  YAML::Node node_;
  std::string path_;
  YamlErrors& errors_;
  bool valid_ = false;
  std::set<std::string> seen_;
};

}  // namespace sitepower::core
