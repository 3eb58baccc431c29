#include "ydt1363/frame.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sitepower::ydt1363 {
namespace {

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string Text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

// networkupstools/nut drivers/ydn23.h ("TESTING"): GET_DEV_ADDR to a UPS at
// ADR 1, VER 0x21, CID1 0x2A, CID2 0x50, and the UPS's reply with RTN 0.
constexpr char kNutRequest[] = "~21012A500000FDA4\r";
constexpr char kNutReply[] = "~21012A000000FDA9\r";

// Pylontech "RS-232 protocol" manual, section 5 example, transcribed byte by
// byte in Interster/PylonTechBattery README.md: get analog values (CID1 0x46,
// CID2 0x42) of pack ADR 1, and the pack's reply (15 cells, 5 temperatures).
constexpr char kPylonRequest[] = "~20014642E00201FD35\r";
constexpr char kPylonReply[] =
    "~20014600C06E11010F0D450D440D450D440D450D440D3E0D450D4A0D4A0D4B0D4A0D4A0D4A0D4A050BC30BC30BC3"
    "0BCD0BCD0000C725BF6802C3500002E553\r";

// Frankkkkk/python-pylontech tests/test_basic.py
// test_up2500_1module_status_info_parsing_1: a UP2500 at ADR 2.
constexpr char kUp2500Reply[] =
    "~20024600D05E1002080D020D020D020D030D000D010D010D03050B7D0B690B690B690B73FFFA680EFFFF04FFFF00"
    "000174E401B198E906\r";

TEST(YdtFrame, EncodesNutGetDeviceAddress) {
  Frame f{.ver = 0x21, .adr = 0x01, .cid1 = 0x2A, .cid2 = 0x50, .info = {}};
  EXPECT_EQ(Text(EncodeFrame(f)), kNutRequest);
}

TEST(YdtFrame, DecodesNutReply) {
  auto f = DecodeFrame(Bytes(kNutReply));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->ver, 0x21);
  EXPECT_EQ(f->adr, 0x01);
  EXPECT_EQ(f->cid1, 0x2A);
  EXPECT_EQ(f->cid2, 0x00);
  EXPECT_TRUE(f->info.empty());
}

TEST(YdtFrame, EncodesPylontechRequestWithInfo) {
  Frame f{.ver = 0x20, .adr = 0x01, .cid1 = 0x46, .cid2 = 0x42, .info = {0x01}};
  EXPECT_EQ(Text(EncodeFrame(f)), kPylonRequest);
}

TEST(YdtFrame, PylontechReplyRoundTrips) {
  auto f = DecodeFrame(Bytes(kPylonReply));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->adr, 0x01);
  EXPECT_EQ(f->cid1, 0x46);
  EXPECT_EQ(f->info.size(), 0x6Eu / 2);
  EXPECT_EQ(f->info[0], 0x11);  // INFOFLAG
  EXPECT_EQ(f->info[2], 15);    // cells
  EXPECT_EQ(f->info[3] << 8 | f->info[4], 0x0D45);
  EXPECT_EQ(Text(EncodeFrame(*f)), kPylonReply);
  auto up = DecodeFrame(Bytes(kUp2500Reply));
  ASSERT_TRUE(up.ok()) << up.status().message();
  EXPECT_EQ(up->info.size(), 0x5Eu / 2);
  EXPECT_EQ(Text(EncodeFrame(*up)), kUp2500Reply);
}

TEST(YdtFrame, LengthFieldCarriesLchksum) {
  // From the captures above: LENID 0x002 -> 0xE002, 0x06E -> 0xC06E, 0x05E -> 0xD05E.
  EXPECT_EQ(LengthField(0x002), 0xE002);
  EXPECT_EQ(LengthField(0x06E), 0xC06E);
  EXPECT_EQ(LengthField(0x05E), 0xD05E);
  EXPECT_EQ(LengthField(0x000), 0x0000);  // sum 0: LCHKSUM 0
  EXPECT_EQ(LengthField(0xFFF), 0x3FFF);  // 45 mod 16 = 13; -13 mod 16 = 3
}

TEST(YdtFrame, NamesEachDefect) {
  auto err = [](std::string s) {
    auto f = DecodeFrame(Bytes(s));
    EXPECT_FALSE(f.ok()) << s;
    return f.ok() ? std::string() : f.status().message();
  };
  std::string good = kNutReply;
  EXPECT_NE(err("21012A000000FDA9\r").find("SOI"), std::string::npos);
  EXPECT_NE(err("~21012A000000FDA9").find("EOI"), std::string::npos);
  EXPECT_NE(err("~21012A0000G0FDA9\r").find("non-hex character 'G' at 11"), std::string::npos);
  EXPECT_NE(err("~21012A000000FDA8\r").find("checksum: frame says 0xFDA8, computed 0xFDA9"),
            std::string::npos);
  EXPECT_NE(err("~2\r").find("length"), std::string::npos);
  // LENID says 2 INFO characters, there are none.
  std::string wrong_len = "~21012A00E0020000\r";
  EXPECT_NE(err(wrong_len).find("length: LENID 0x002 says 2 INFO characters, frame has 0"),
            std::string::npos);
  // Two INFO characters with LCHKSUM 0 (should be 0xE): the checksum is right.
  std::string body = "21012A00000201";
  uint16_t chk = FrameChecksum(Bytes(body));
  char tail[8];
  std::snprintf(tail, sizeof tail, "%04X\r", chk);
  EXPECT_NE(err("~" + body + tail).find("length: LCHKSUM 0x0, expected 0xE"), std::string::npos);
  // An odd LENID with a correct LCHKSUM.
  body = "21012A00F0010";
  chk = FrameChecksum(Bytes(body));
  std::snprintf(tail, sizeof tail, "%04X\r", chk);
  EXPECT_NE(err("~" + body + tail).find("is odd"), std::string::npos);
}

TEST(YdtFrame, ReturnCodesAreNamed) {
  Frame req{.ver = 0x20, .adr = 2, .cid1 = 0x46, .cid2 = 0x42, .info = {2}};
  Frame reply{.ver = 0x20, .adr = 2, .cid1 = 0x46, .cid2 = 0x00, .info = {}};
  EXPECT_TRUE(CheckReply(reply, req).ok());
  reply.cid2 = 0x04;
  auto st = CheckReply(reply, req);
  EXPECT_EQ(st.code(), core::Status::Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("CID2 invalid (RTN 0x04)"), std::string::npos) << st.message();
  reply.cid2 = 0x02;
  EXPECT_NE(CheckReply(reply, req).message().find("bad CHKSUM"), std::string::npos);
  reply.cid2 = 0x83;
  EXPECT_NE(CheckReply(reply, req).message().find("user-defined error (RTN 0x83)"),
            std::string::npos);
  reply.cid2 = 0;
  reply.adr = 3;
  st = CheckReply(reply, req);
  EXPECT_EQ(st.code(), core::Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("reply from ADR 0x03, asked ADR 0x02"), std::string::npos);
  reply.adr = 2;
  reply.cid1 = 0x42;
  EXPECT_NE(CheckReply(reply, req).message().find("reply CID1 0x42, asked 0x46"),
            std::string::npos);
}

TEST(YdtFrame, SplitterFindsFramesInNoise) {
  FrameSplitter s;
  std::string stream = std::string("\x00\xFFjunk", 6) + kNutReply + "~2101" + kNutRequest;
  auto b = Bytes(stream);
  // Fed in two pieces split inside the first frame.
  EXPECT_EQ(s.Feed(std::span<const uint8_t>(b.data(), 10)), 0u);
  EXPECT_TRUE(s.mid_frame());
  EXPECT_EQ(s.Feed(std::span<const uint8_t>(b.data() + 10, b.size() - 10)), 2u);
  EXPECT_EQ(Text(s.Next()), kNutReply);
  EXPECT_EQ(Text(s.Next()), kNutRequest);  // the torn "~2101" was dropped
  EXPECT_TRUE(s.Next().empty());
  EXPECT_EQ(s.discarded(), 6u + 5u);
}

TEST(YdtFrame, SplitterDropsOverlongFrames) {
  FrameSplitter s;
  std::vector<uint8_t> b(kMaxFrameBytes + 10, '0');
  b[0] = kSoi;
  EXPECT_EQ(s.Feed(b), 0u);
  auto good = Bytes(kNutReply);
  EXPECT_EQ(s.Feed(good), 1u);
  EXPECT_EQ(Text(s.Next()), kNutReply);
}

}  // namespace
}  // namespace sitepower::ydt1363
