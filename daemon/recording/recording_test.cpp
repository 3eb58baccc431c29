// The recording codec: a round trip, a file continued after a restart, a
// truncated tail (kill -9 mid-write) that loses only the partial record, and
// damage reported with its byte offset.
#include "recording/recording.hpp"

#include <gtest/gtest.h>

namespace sitepower::recording {
namespace {

Sample S(const std::string& site, int64_t t, double v, double a) {
  Sample s;
  s.site = site;
  s.t_ms = t;
  s.voltage_v = v;
  s.current_a = a;
  s.temp_c = 21.5;
  s.soc_pct = 97.3;
  s.mains_ok = false;
  s.generator_running = true;
  return s;
}

TEST(RecordingTest, RoundTripIsCompactAndExact) {
  Writer w;
  std::string bytes;
  for (int i = 0; i < 1000; ++i)
    w.Add(S(i % 2 ? "WZ-02" : "WZ-01", 1583627400000 + i * 500, 49.87 - i * 0.001, 41.2), &bytes);
  Parsed p = Parse(bytes);
  ASSERT_TRUE(p.error.empty()) << p.error;
  ASSERT_EQ(p.samples.size(), 1000u);
  EXPECT_EQ(p.valid_bytes, bytes.size());
  EXPECT_EQ(p.samples[3].site, "WZ-02");
  EXPECT_EQ(p.samples[3].t_ms, 1583627401500);
  EXPECT_NEAR(*p.samples[3].voltage_v, 49.867, 0.005);
  EXPECT_NEAR(*p.samples[3].current_a, 41.2, 1e-9);
  EXPECT_FALSE(*p.samples[3].mains_ok);
  EXPECT_TRUE(*p.samples[3].generator_running);
  EXPECT_FALSE(p.samples[3].lvd_open.has_value());
  std::printf("1000 samples in %zu bytes (%.1f bytes each)\n", bytes.size(), bytes.size() / 1000.0);
  EXPECT_LT(bytes.size(), 16000u);
}

TEST(RecordingTest, AbsentValuesStayAbsent) {
  Writer w;
  std::string bytes;
  Sample s;
  s.site = "X";
  s.t_ms = 5;
  s.voltage_v = std::numeric_limits<double>::quiet_NaN();  // never written as a number
  w.Add(s, &bytes);
  Parsed p = Parse(bytes);
  ASSERT_EQ(p.samples.size(), 1u);
  EXPECT_FALSE(p.samples[0].voltage_v.has_value());
  EXPECT_FALSE(p.samples[0].mains_ok.has_value());
}

TEST(RecordingTest, ContinuesAfterRestartAndSurvivesATornTail) {
  Writer w;
  std::string bytes;
  w.Add(S("A", 1000, 50, 10), &bytes);
  w.Add(S("B", 2000, 51, 11), &bytes);
  // kill -9 in the middle of the next record:
  std::string torn = bytes;
  Writer(torn).Add(S("C", 3000, 52, 12), &torn);
  torn.resize(torn.size() - 3);
  Parsed p = Parse(torn);
  EXPECT_EQ(p.samples.size(), 2u);  // what was complete is kept
  EXPECT_FALSE(p.error.empty());
  // The daemon continues from the valid prefix.
  std::string resumed = torn.substr(0, p.valid_bytes);
  Writer again(resumed);
  again.Add(S("A", 4000, 49, 9), &resumed);
  again.Add(S("C", 5000, 48, 8), &resumed);
  Parsed q = Parse(resumed);
  ASSERT_TRUE(q.error.empty()) << q.error;
  ASSERT_EQ(q.samples.size(), 4u);
  EXPECT_EQ(q.samples[2].site, "A");
  EXPECT_EQ(q.samples[2].t_ms, 4000);
  EXPECT_EQ(q.samples[3].site, "C");
}

TEST(RecordingTest, DamageIsReportedWithItsOffset) {
  EXPECT_NE(Parse("GARBAGE").error.find("byte 0: not a sitepower recording"), std::string::npos);
  Writer w;
  std::string bytes;
  w.Add(S("A", 1, 50, 1), &bytes);
  std::string bad = bytes + "Q";
  Parsed p = Parse(bad);
  EXPECT_EQ(p.samples.size(), 1u);
  EXPECT_EQ(p.error, "byte " + std::to_string(bytes.size()) + ": unknown record type 81");
  std::string undefined = bytes + std::string("D\x05\x02\x00\x00", 5);
  EXPECT_NE(Parse(undefined).error.find("site #5, only 1 defined"), std::string::npos);
}

TEST(RecordingTest, FailedPollsAreRecordedAsHolesWithoutValues) {
  Writer w;
  std::string bytes;
  w.Add(S("WZ-01", 1000, 49.9, 40), &bytes);
  Sample hole;
  hole.site = "WZ-01";
  hole.t_ms = 4000;
  hole.voltage_v = 12;  // a failed poll carries no values, whatever it is given
  hole.mains_ok = true;
  hole.poll_failed = true;
  const size_t before = bytes.size();
  w.Add(hole, &bytes);
  EXPECT_LE(bytes.size() - before, 6u);  // D, site, a 2-byte time step, present, flags
  w.Add(S("WZ-01", 7000, 49.8, 40), &bytes);
  Parsed p = Parse(bytes);
  ASSERT_TRUE(p.error.empty()) << p.error;
  ASSERT_EQ(p.samples.size(), 3u);
  EXPECT_FALSE(p.samples[0].poll_failed);
  EXPECT_TRUE(p.samples[1].poll_failed);
  EXPECT_EQ(p.samples[1].t_ms, 4000);
  EXPECT_FALSE(p.samples[1].voltage_v.has_value());
  EXPECT_FALSE(p.samples[1].mains_ok.has_value());
  EXPECT_FALSE(p.samples[2].poll_failed);
  EXPECT_NEAR(*p.samples[2].voltage_v, 49.8, 1e-9);
  // A failed-poll record that claims values is damage, not a sample.
  std::string bad = bytes.substr(0, before);
  bad += std::string("D\x00\x06\x01\x01", 5) + "\x02";
  Parsed q = Parse(bad);
  EXPECT_NE(q.error.find("failed poll with values"), std::string::npos) << q.error;
  EXPECT_EQ(q.samples.size(), 1u);
}

}  // namespace
}  // namespace sitepower::recording
