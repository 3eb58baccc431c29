#include "modbus/codec.hpp"

#include <gtest/gtest.h>

namespace sitepower::modbus {
namespace {

TEST(CodecTest, EncodesReadHoldingRegistersByteForByte) {
  auto adu = EncodeReadRequest(0x0102, 7, Function::kReadHoldingRegisters, 40104, 3);
  std::vector<uint8_t> want = {0x01, 0x02, 0x00, 0x00, 0x00, 0x06,
                               0x07, 0x03, 0x9C, 0xA8, 0x00, 0x03};
  EXPECT_EQ(adu, want);
}

TEST(CodecTest, DecodesMbapHeaderAndRejectsGarbage) {
  std::vector<uint8_t> h = {0x00, 0x05, 0x00, 0x00, 0x00, 0x07, 0x01};
  auto m = DecodeMbapHeader(h);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->transaction_id, 5);
  EXPECT_EQ(m->length, 7);
  std::vector<uint8_t> junk = {0xA5, 0x80, 0x4A, 0xEF, 0x94, 0x39, 0xDE};
  EXPECT_FALSE(DecodeMbapHeader(junk).ok());
  std::vector<uint8_t> too_long = {0, 1, 0, 0, 0x01, 0x00, 1};
  EXPECT_FALSE(DecodeMbapHeader(too_long).ok());
}

TEST(CodecTest, DecodesRegistersAndBits) {
  std::vector<uint8_t> regs = {0x03, 0x04, 0x12, 0x34, 0xFF, 0xFE};
  auto r = DecodeReadResponse(regs, Function::kReadHoldingRegisters, 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0], 0x1234);
  EXPECT_EQ((*r)[1], 0xFFFE);
  std::vector<uint8_t> bits = {0x02, 0x01, 0b101};
  auto b = DecodeReadResponse(bits, Function::kReadDiscreteInputs, 3);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<uint16_t>{1, 0, 1}));
}

TEST(CodecTest, ExceptionAndMismatchesAreErrors) {
  std::vector<uint8_t> ex = {0x83, 0x02};
  auto e = DecodeReadResponse(ex, Function::kReadHoldingRegisters, 1);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), core::Status::Code::kFailedPrecondition);
  EXPECT_NE(e.status().message().find("illegal data address"), std::string::npos);
  std::vector<uint8_t> short_count = {0x03, 0x02, 0x00, 0x01};
  EXPECT_FALSE(DecodeReadResponse(short_count, Function::kReadHoldingRegisters, 2).ok());
  std::vector<uint8_t> wrong_fc = {0x04, 0x02, 0x00, 0x01};
  EXPECT_FALSE(DecodeReadResponse(wrong_fc, Function::kReadHoldingRegisters, 1).ok());
  std::vector<uint8_t> truncated = {0x03, 0x04, 0x00};
  EXPECT_FALSE(DecodeReadResponse(truncated, Function::kReadHoldingRegisters, 2).ok());
}

}  // namespace
}  // namespace sitepower::modbus
