// RTU framing byte for byte: published vectors (Modbus over Serial Line
// V1.02, the CRC catalogue check value), a capture from pymodbus 3.0, and
// libmodbus 3.1.6 as the peer on a pseudo-terminal (its requests compared with
// ours, its replies framed by ours).
#include "modbus/rtu_codec.hpp"

#include <fcntl.h>
#include <modbus/modbus.h>
#include <poll.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace sitepower::modbus {
namespace {

using Bytes = std::vector<uint8_t>;
using State = RtuReplyFramer::State;

TEST(RtuCodecTest, Crc16ModbusKnownValues) {
  const std::string check = "123456789";  // CRC catalogue: CRC-16/MODBUS check = 0x4B37
  EXPECT_EQ(Crc16Modbus(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(check.data()),
                                                 check.size())),
            0x4B37);
  EXPECT_EQ(Crc16Modbus(Bytes{0x02, 0x07}), 0x1241);  // Modbus over Serial Line V1.02 §6.2.2
  EXPECT_EQ(Crc16Modbus(Bytes{}), 0xFFFF);
}

TEST(RtuCodecTest, EncodesReadRequestsByteForByte) {
  EXPECT_EQ(EncodeRtuReadRequest(1, Function::kReadHoldingRegisters, 0, 10),
            (Bytes{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD}));
  // The Modbus application protocol's FC03 example (slave 17, 40108-40110).
  EXPECT_EQ(EncodeRtuReadRequest(0x11, Function::kReadHoldingRegisters, 0x006B, 3),
            (Bytes{0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87}));
}

TEST(RtuCodecTest, FramesAPymodbusCaptureByteByByte) {
  // pymodbus 3.0.0rc1 (ModbusRtuFramer) answering `01 03 00 00 00 0A C5 CD`
  // with registers 100..109.
  const Bytes capture = {0x01, 0x03, 0x14, 0x00, 0x64, 0x00, 0x65, 0x00, 0x66,
                         0x00, 0x67, 0x00, 0x68, 0x00, 0x69, 0x00, 0x6A, 0x00,
                         0x6B, 0x00, 0x6C, 0x00, 0x6D, 0x63, 0xD1};
  RtuReplyFramer f(1, Function::kReadHoldingRegisters, 10);
  for (size_t i = 0; i + 1 < capture.size(); ++i) {
    ASSERT_EQ(f.Feed(std::span<const uint8_t>(&capture[i], 1)), State::kNeedMore) << i;
    if (i >= 2) {
      EXPECT_EQ(f.expected_size(), capture.size());
    }
  }
  ASSERT_EQ(f.Feed(std::span<const uint8_t>(&capture.back(), 1)), State::kComplete) << f.Describe();
  auto values = DecodeReadResponse(f.pdu(), Function::kReadHoldingRegisters, 10);
  ASSERT_TRUE(values.ok()) << values.status().ToString();
  for (uint16_t i = 0; i < 10; ++i) EXPECT_EQ((*values)[i], 100 + i);
  // Our server side encodes the same bytes.
  std::vector<uint16_t> regs;
  for (uint16_t i = 0; i < 10; ++i) regs.push_back(100 + i);
  EXPECT_EQ(EncodeRtuReadResponse(1, Function::kReadHoldingRegisters, regs), capture);
}

TEST(RtuCodecTest, ExceptionAndBitReplies) {
  const Bytes ex = {0x01, 0x83, 0x02, 0xC0, 0xF1};  // illegal data address, unit 1
  EXPECT_EQ(EncodeRtuException(1, 3, 2), ex);
  RtuReplyFramer f(1, Function::kReadHoldingRegisters, 4);
  ASSERT_EQ(f.Feed(ex), State::kComplete) << f.Describe();
  auto e = DecodeReadResponse(f.pdu(), Function::kReadHoldingRegisters, 4);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), core::Status::Code::kFailedPrecondition);
  EXPECT_NE(e.status().message().find("illegal data address"), std::string::npos);

  const std::vector<uint16_t> bits = {1, 0, 1, 1, 0, 0, 0, 0, 1};
  Bytes adu = EncodeRtuReadResponse(5, Function::kReadDiscreteInputs, bits);
  EXPECT_EQ(adu.size(), 3u + 2u + 2u);
  EXPECT_EQ(adu[2], 2);  // 9 bits in 2 bytes
  EXPECT_EQ(adu[3], 0b1101);
  RtuReplyFramer b(5, Function::kReadDiscreteInputs, 9);
  ASSERT_EQ(b.Feed(adu), State::kComplete);
  auto got = DecodeReadResponse(b.pdu(), Function::kReadDiscreteInputs, 9);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, bits);
}

TEST(RtuCodecTest, GarbageIsSeenAsEarlyAsPossible) {
  const std::vector<uint16_t> regs = {7, 8};
  const Bytes good = EncodeRtuReadResponse(3, Function::kReadHoldingRegisters, regs);
  {
    RtuReplyFramer f(4, Function::kReadHoldingRegisters, 2);  // another unit's reply
    EXPECT_EQ(f.Feed(std::span<const uint8_t>(good.data(), 1)), State::kGarbage);
    EXPECT_EQ(f.Describe(), "reply from unit 3 to a request for unit 4");
  }
  {
    RtuReplyFramer f(3, Function::kReadInputRegisters, 2);  // fc 3 reply to fc 4
    EXPECT_EQ(f.Feed(good), State::kGarbage);
    EXPECT_EQ(f.Describe(), "function code 3 in reply to 4");
    EXPECT_EQ(f.received(), 2u);
    EXPECT_EQ(f.ignored(), good.size() - 2);
  }
  {
    RtuReplyFramer f(3, Function::kReadHoldingRegisters, 3);  // wrong byte count
    EXPECT_EQ(f.Feed(good), State::kGarbage);
    EXPECT_EQ(f.Describe(), "byte count 4, expected 6");
  }
  {
    Bytes bad = good;
    bad[4] ^= 0x40;  // one bit flipped in the data
    RtuReplyFramer f(3, Function::kReadHoldingRegisters, 2);
    EXPECT_EQ(f.Feed(bad), State::kGarbage);
    EXPECT_NE(f.Describe().find("CRC"), std::string::npos) << f.Describe();
  }
  {
    RtuReplyFramer f(3, Function::kReadHoldingRegisters, 2);  // truncated
    EXPECT_EQ(f.Feed(std::span<const uint8_t>(good.data(), 5)), State::kNeedMore);
    EXPECT_EQ(f.Describe(), "truncated reply: 5 of 9 bytes");
  }
  {
    Bytes trailing = good;  // a complete frame followed by noise: the noise is not framed
    trailing.push_back(0x55);
    RtuReplyFramer f(3, Function::kReadHoldingRegisters, 2);
    EXPECT_EQ(f.Feed(trailing), State::kComplete);
    EXPECT_EQ(f.ignored(), 1u);
    EXPECT_EQ(f.pdu().size(), 6u);
  }
}

TEST(RtuCodecTest, ScansFramesOfOtherUnits) {
  using S = RtuFrameScan::State;
  const std::vector<uint16_t> regs = {1, 2, 3};
  Bytes late = EncodeRtuReadResponse(7, Function::kReadInputRegisters, regs);
  for (size_t n = 0; n < late.size(); ++n)
    EXPECT_EQ(ScanRtuReply(std::span<const uint8_t>(late.data(), n)).state, S::kNeedMore) << n;
  late.push_back(0x01);  // the next frame's first byte
  auto scan = ScanRtuReply(late);
  EXPECT_EQ(scan.state, S::kFrame);
  EXPECT_EQ(scan.size, 11u);
  EXPECT_EQ(scan.unit, 7);
  auto ex = ScanRtuReply(EncodeRtuException(9, 2, 4));
  EXPECT_EQ(ex.state, S::kFrame);
  EXPECT_EQ(ex.size, 5u);
  late[5] ^= 0x10;
  EXPECT_EQ(ScanRtuReply(late).state, S::kNotAFrame);               // CRC
  EXPECT_EQ(ScanRtuReply(Bytes{0x00, 0x03}).state, S::kNotAFrame);  // broadcast never answers
  EXPECT_EQ(ScanRtuReply(Bytes{0x05, 0x10}).state, S::kNotAFrame);  // not a read
}

TEST(RtuCodecTest, DecodesRequestsForTheServerSide) {
  auto r = DecodeRtuReadRequest(Bytes{0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->unit, 0x11);
  EXPECT_EQ(r->function, 3);
  EXPECT_EQ(r->address, 0x6B);
  EXPECT_EQ(r->count, 3);
  EXPECT_FALSE(DecodeRtuReadRequest(Bytes{0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x88}).ok());
  EXPECT_FALSE(DecodeRtuReadRequest(Bytes{0x11, 0x03, 0x00}).ok());
}

TEST(RtuCodecTest, LineTiming) {
  using std::chrono::nanoseconds;
  EXPECT_EQ(RtuBitsPerChar(8, 'N', 1), 10);
  EXPECT_EQ(RtuBitsPerChar(8, 'E', 1), 11);
  EXPECT_EQ(RtuBitsPerChar(8, 'N', 2), 11);
  EXPECT_EQ(RtuCharTime(9600, 10), nanoseconds(1041666));
  EXPECT_EQ(RtuInterFrameGap(9600, 10), nanoseconds(3645831));   // 3.5 x 1.0417 ms
  EXPECT_EQ(RtuInterFrameGap(19200, 11), nanoseconds(2005206));  // 3.5 chars up to 19200
  EXPECT_EQ(RtuInterFrameGap(38400, 10), nanoseconds(1750000));  // fixed above 19200
  EXPECT_EQ(RtuInterFrameGap(115200, 11), nanoseconds(1750000));
  EXPECT_EQ(RtuWireTime(8, 9600, 10), nanoseconds(8333333));
}

// --- libmodbus as the peer, on a pseudo-terminal ------------------------------

struct Pty {
  Pty() {
    char name[128];
    if (openpty(&master, &slave, name, nullptr, nullptr) != 0) return;
    termios t{};
    tcgetattr(slave, &t);
    cfmakeraw(&t);
    tcsetattr(slave, TCSANOW, &t);
    path = name;
  }
  ~Pty() {
    if (master >= 0) close(master);
    if (slave >= 0) close(slave);
  }
  // Reads from the master until `want` bytes, `ms` without a first byte, or
  // 50 ms of silence after one.
  Bytes Read(size_t want, int ms) const {
    Bytes out;
    uint8_t buf[300];
    pollfd p{master, POLLIN, 0};
    while (out.size() < want && poll(&p, 1, out.empty() ? ms : 50) > 0) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n <= 0) break;
      out.insert(out.end(), buf, buf + n);
    }
    return out;
  }
  int master = -1, slave = -1;
  std::string path;
};

TEST(RtuCodecTest, RequestsMatchLibmodbusByteForByte) {
  Pty pty;
  ASSERT_FALSE(pty.path.empty());
  modbus_t* ctx = modbus_new_rtu(pty.path.c_str(), 19200, 'E', 8, 1);
  ASSERT_NE(ctx, nullptr);
  ASSERT_EQ(modbus_connect(ctx), 0) << modbus_strerror(errno);
  modbus_set_response_timeout(ctx, 0, 20000);  // nobody answers: we only want its request
  struct Case {
    int unit;
    Function fc;
    uint16_t address, count;
  };
  const Case cases[] = {{1, Function::kReadHoldingRegisters, 0, 10},
                        {17, Function::kReadHoldingRegisters, 40070, 62},
                        {247, Function::kReadInputRegisters, 0xFFFF, 1},
                        {5, Function::kReadDiscreteInputs, 0, 3},
                        {99, Function::kReadCoils, 300, 2000}};
  uint16_t regs[125];
  uint8_t bits[2000];
  for (const Case& c : cases) {
    modbus_set_slave(ctx, c.unit);
    switch (c.fc) {
      case Function::kReadHoldingRegisters:
        modbus_read_registers(ctx, c.address, c.count, regs);
        break;
      case Function::kReadInputRegisters:
        modbus_read_input_registers(ctx, c.address, c.count, regs);
        break;
      case Function::kReadDiscreteInputs:
        modbus_read_input_bits(ctx, c.address, c.count, bits);
        break;
      case Function::kReadCoils:
        modbus_read_bits(ctx, c.address, c.count, bits);
        break;
    }
    EXPECT_EQ(pty.Read(8, 200),
              EncodeRtuReadRequest(static_cast<uint8_t>(c.unit), c.fc, c.address, c.count))
        << "unit " << c.unit << " fc " << static_cast<int>(c.fc);
  }
  modbus_close(ctx);
  modbus_free(ctx);
}

TEST(RtuCodecTest, FramesLibmodbusReplies) {
  Pty pty;
  ASSERT_FALSE(pty.path.empty());
  modbus_t* ctx = modbus_new_rtu(pty.path.c_str(), 9600, 'N', 8, 1);
  ASSERT_NE(ctx, nullptr);
  modbus_set_slave(ctx, 9);
  ASSERT_EQ(modbus_connect(ctx), 0) << modbus_strerror(errno);
  modbus_mapping_t* map = modbus_mapping_new_start_address(0, 0, 0, 16, 100, 50, 0, 0);
  for (int i = 0; i < 50; ++i) map->tab_registers[i] = static_cast<uint16_t>(0xA000 + i);
  for (int i = 0; i < 16; ++i) map->tab_input_bits[i] = i % 3 == 0;
  std::thread server([ctx, map] {
    uint8_t q[MODBUS_RTU_MAX_ADU_LENGTH];
    for (int served = 0; served < 3;) {
      int rc = modbus_receive(ctx, q);
      if (rc > 0) {
        modbus_reply(ctx, q, rc, map);
        ++served;
      } else if (rc < 0) {
        break;
      }
    }
  });
  auto exchange = [&pty](uint8_t unit, Function fc, uint16_t address, uint16_t count,
                         core::Result<std::vector<uint16_t>>* out) {
    Bytes req = EncodeRtuReadRequest(unit, fc, address, count);
    if (write(pty.master, req.data(), req.size()) != static_cast<ssize_t>(req.size())) return;
    RtuReplyFramer f(unit, fc, count);
    Bytes got = pty.Read(f.reply_size(), 1000);
    for (uint8_t b : got)  // byte by byte, as a slow line delivers them
      if (f.Feed(std::span<const uint8_t>(&b, 1)) != State::kNeedMore) break;
    if (f.state() != State::kComplete) {
      *out = core::Status::InvalidArgument(f.Describe());
      return;
    }
    *out = DecodeReadResponse(f.pdu(), fc, count);
  };
  core::Result<std::vector<uint16_t>> regs = core::Status::Internal("not run"),
                                      in = core::Status::Internal("not run"),
                                      bad = core::Status::Internal("not run");
  exchange(9, Function::kReadHoldingRegisters, 110, 20, &regs);
  exchange(9, Function::kReadDiscreteInputs, 1, 10, &in);
  exchange(9, Function::kReadHoldingRegisters, 140, 20, &bad);  // past the end of its map
  server.join();
  modbus_close(ctx);
  modbus_free(ctx);
  modbus_mapping_free(map);
  ASSERT_TRUE(regs.ok()) << regs.status().ToString();
  for (uint16_t i = 0; i < 20; ++i) EXPECT_EQ((*regs)[i], 0xA000 + 10 + i);
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  for (uint16_t i = 0; i < 10; ++i) EXPECT_EQ((*in)[i], (i + 1) % 3 == 0 ? 1 : 0) << i;
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), core::Status::Code::kFailedPrecondition)
      << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("illegal data address"), std::string::npos);
}

}  // namespace
}  // namespace sitepower::modbus
