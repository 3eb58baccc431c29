#include "core/yaml_reader.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

namespace sitepower::core {

void YamlErrors::Add(const YAML::Node& at, const std::string& path, const std::string& msg) {
  int line = at.IsDefined() && !at.Mark().is_null() ? at.Mark().line + 1 : 0;
  AddAtLine(line, path, msg);
}

void YamlErrors::AddAtLine(int line, const std::string& path, const std::string& msg) {
  std::string e = file_;
  if (line > 0) e += ":" + std::to_string(line);
  e += ": ";
  if (!path.empty()) e += path + ": ";
  errors_.push_back(e + msg);
}

Status YamlErrors::ToStatus() const {
  if (errors_.empty()) return Status::Ok();
  std::string all;
  for (size_t i = 0; i < errors_.size(); ++i) {
    if (i) all += "\n";
    all += errors_[i];
  }
  return Status::InvalidArgument(all);
}

Result<YAML::Node> LoadYamlString(const std::string& text, const std::string& name) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(name + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Result<YAML::Node> LoadYamlFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(path + ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadYamlString(ss.str(), path);
}

YamlMap::YamlMap(const YAML::Node& node, std::string path, YamlErrors& errors)
    : node_(node), path_(std::move(path)), errors_(errors) {
  if (!node_.IsDefined() || node_.IsNull()) {
    valid_ = false;
    errors_.Add(node_, path_.empty() ? "(document)" : path_, "expected a mapping, got nothing");
  } else if (!node_.IsMap()) {
    errors_.Add(node_, path_.empty() ? "(document)" : path_, "expected a mapping");
  } else {
    valid_ = true;
  }
}

bool YamlMap::Has(const std::string& key) const { return valid_ && node_[key].IsDefined(); }

std::string YamlMap::PathOf(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

YAML::Node YamlMap::Child(const std::string& key, bool required) {
  seen_.insert(key);
  if (!valid_) return YAML::Node(YAML::NodeType::Undefined);
  YAML::Node n = node_[key];
  if (!n.IsDefined() && required) errors_.Add(node_, PathOf(key), "required key is missing");
  return n;
}

std::optional<std::string> YamlMap::String(const std::string& key, bool required) {
  YAML::Node n = Child(key, required);
  if (!n.IsDefined()) return std::nullopt;
  if (!n.IsScalar()) {
    errors_.Add(n, PathOf(key), "expected a string");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<double> YamlMap::Number(const std::string& key, bool required,
                                      std::optional<double> min, std::optional<double> max) {
  YAML::Node n = Child(key, required);
  if (!n.IsDefined()) return std::nullopt;
  double v;
  if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || !std::isfinite(v)) {
    errors_.Add(n, PathOf(key),
                "expected a number, got '" + (n.IsScalar() ? n.Scalar() : "?") + "'");
    return std::nullopt;
  }
  if ((min && v < *min) || (max && v > *max)) {
    std::ostringstream m;
    m << "value " << v << " out of range";
    if (min)
      m << " [" << *min;
    else
      m << " (-inf";
    if (max)
      m << ", " << *max << "]";
    else
      m << ", inf)";
    errors_.Add(n, PathOf(key), m.str());
    return std::nullopt;
  }
  return v;
}

std::optional<long long> YamlMap::Integer(const std::string& key, bool required,
                                          std::optional<long long> min,
                                          std::optional<long long> max) {
  YAML::Node n = Child(key, required);
  if (!n.IsDefined()) return std::nullopt;
  long long v;
  if (!n.IsScalar() || !YAML::convert<long long>::decode(n, v)) {
    errors_.Add(n, PathOf(key),
                "expected an integer, got '" + (n.IsScalar() ? n.Scalar() : "?") + "'");
    return std::nullopt;
  }
  if ((min && v < *min) || (max && v > *max)) {
    errors_.Add(n, PathOf(key), "value " + std::to_string(v) + " out of range");
    return std::nullopt;
  }
  return v;
}

std::optional<bool> YamlMap::Bool(const std::string& key, bool required) {
  YAML::Node n = Child(key, required);
  if (!n.IsDefined()) return std::nullopt;
  bool v;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
    errors_.Add(n, PathOf(key), "expected true or false");
    return std::nullopt;
  }
  return v;
}

std::optional<std::vector<std::string>> YamlMap::StringList(const std::string& key, bool required) {
  YAML::Node n = Child(key, required);
  if (!n.IsDefined()) return std::nullopt;
  if (!n.IsSequence()) {
    errors_.Add(n, PathOf(key), "expected a list");
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsScalar()) {
      errors_.Add(n[i], PathOf(key) + "[" + std::to_string(i) + "]", "expected a string");
      return std::nullopt;
    }
    out.push_back(n[i].Scalar());
  }
  return out;
}

std::optional<LatLon> YamlMap::Location(const std::string& key, bool required) {
  YAML::Node n = Child(key, required);
  if (!n.IsDefined()) return std::nullopt;
  double lat, lon;
  if (!n.IsSequence() || n.size() != 2 || !YAML::convert<double>::decode(n[0], lat) ||
      !YAML::convert<double>::decode(n[1], lon)) {
    errors_.Add(n, PathOf(key), "expected [lat, lon] in degrees");
    return std::nullopt;
  }
  if (lat < -90 || lat > 90 || lon < -180 || lon > 180) {
    errors_.Add(n, PathOf(key), "coordinates out of range");
    return std::nullopt;
  }
  return LatLon{lat, lon};
}

void YamlMap::CheckNoUnknownKeys() {
  if (!valid_) return;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    std::string k = it->first.Scalar();
    if (!seen_.count(k)) errors_.Add(it->first, PathOf(k), "unknown key");
  }
}

}  // namespace sitepower::core
