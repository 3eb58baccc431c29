#include "core/yaml_reader.hpp"

#include <gtest/gtest.h>

namespace sitepower::core {
namespace {

TEST(YamlReaderTest, ReportsFileLineAndPathForEveryError) {
  auto doc = LoadYamlString("a: 1\nb: twenty\nc: [x, y]\ntypo: 3\n", "t.yaml");
  ASSERT_TRUE(doc.ok());
  YamlErrors errors("t.yaml");
  YamlMap m(*doc, "", errors);
  EXPECT_EQ(m.Integer("a", true), 1);
  EXPECT_FALSE(m.Number("b", true).has_value());
  EXPECT_EQ(m.StringList("c")->size(), 2u);
  EXPECT_FALSE(m.String("missing", true).has_value());
  m.CheckNoUnknownKeys();
  ASSERT_EQ(errors.errors().size(), 3u);
  EXPECT_EQ(errors.errors()[0], "t.yaml:2: b: expected a number, got 'twenty'");
  EXPECT_NE(errors.errors()[1].find("missing: required key is missing"), std::string::npos);
  EXPECT_EQ(errors.errors()[2], "t.yaml:4: typo: unknown key");
}

TEST(YamlReaderTest, SyntaxErrorNamesLine) {
  auto doc = LoadYamlString("a: 1\nb: [\n", "bad.yaml");
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.status().message().find("bad.yaml:"), std::string::npos);
}

TEST(YamlReaderTest, RangeChecked) {
  auto doc = LoadYamlString("soh: 1.5\n", "t.yaml");
  YamlErrors errors("t.yaml");
  YamlMap m(*doc, "battery", errors);
  EXPECT_FALSE(m.Number("soh", true, 0.0, 1.0).has_value());
  EXPECT_NE(errors.errors()[0].find("t.yaml:1: battery.soh: value 1.5 out of range"),
            std::string::npos);
}

}  // namespace
}  // namespace sitepower::core
