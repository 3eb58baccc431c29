#include "modbus/rtu_codec.hpp"

#include <cstdio>

namespace sitepower::modbus {

namespace {

std::string Hex16(uint16_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04X", v);
  return buf;
}

size_t DataBytes(Function fc, uint16_t count) {
  return IsBitFunction(fc) ? (count + 7u) / 8u : 2u * count;
}

// unit + PDU of a codec.hpp (MBAP) ADU: the PDU layout is the same on both.
std::vector<uint8_t> FromMbap(std::vector<uint8_t> mbap) {
  std::vector<uint8_t> adu(mbap.begin() + static_cast<long>(kMbapHeaderSize - 1), mbap.end());
  AppendCrc(adu);
  return adu;
}

}  // namespace

uint16_t Crc16Modbus(std::span<const uint8_t> bytes) {
  uint16_t crc = 0xFFFF;
  for (uint8_t b : bytes) {
    crc ^= b;
    for (int i = 0; i < 8; ++i)
      crc = (crc & 1) ? static_cast<uint16_t>((crc >> 1) ^ 0xA001) : crc >> 1;
  }
  return crc;
}

void AppendCrc(std::vector<uint8_t>& adu) {
  const uint16_t crc = Crc16Modbus(adu);
  adu.push_back(static_cast<uint8_t>(crc & 0xFF));
  adu.push_back(static_cast<uint8_t>(crc >> 8));
}

std::vector<uint8_t> EncodeRtuReadRequest(uint8_t unit, Function fc, uint16_t address,
                                          uint16_t count) {
  return FromMbap(EncodeReadRequest(0, unit, fc, address, count));
}

RtuReplyFramer::RtuReplyFramer(uint8_t unit, Function fc, uint16_t count)
    : unit_(unit), fc_(fc), count_(count) {
  frame_.reserve(reply_size());
}

size_t RtuReplyFramer::reply_size() const { return 3 + DataBytes(fc_, count_) + 2; }

RtuReplyFramer::State RtuReplyFramer::Feed(std::span<const uint8_t> bytes) {
  size_t i = 0;
  for (; i < bytes.size() && state_ == State::kNeedMore; ++i) {
    const uint8_t b = bytes[i];
    frame_.push_back(b);
    const size_t n = frame_.size();
    if (n == 1 && b != unit_) {
      error_ = "reply from unit " + std::to_string(b) + " to a request for unit " +
               std::to_string(unit_);
    } else if (n == 2) {
      if (b == (static_cast<uint8_t>(fc_) | 0x80))
        expected_ = 5;
      else if (b != static_cast<uint8_t>(fc_))
        error_ = "function code " + std::to_string(b) + " in reply to " +
                 std::to_string(static_cast<int>(fc_));
    } else if (n == 3 && expected_ == 0) {
      const size_t want = DataBytes(fc_, count_);
      if (b != want)
        error_ = "byte count " + std::to_string(b) + ", expected " + std::to_string(want);
      else
        expected_ = 3 + want + 2;
    }
    if (!error_.empty()) {
      state_ = State::kGarbage;
    } else if (expected_ != 0 && n == expected_) {
      const uint16_t got = static_cast<uint16_t>(frame_[n - 2] | frame_[n - 1] << 8);
      const uint16_t want = Crc16Modbus(std::span<const uint8_t>(frame_.data(), n - 2));
      if (got != want) {
        error_ = "CRC " + Hex16(got) + " received, " + Hex16(want) + " computed";
        state_ = State::kGarbage;
      } else {
        state_ = State::kComplete;
      }
    }
  }
  ignored_ += bytes.size() - i;
  return state_;
}

std::span<const uint8_t> RtuReplyFramer::pdu() const {
  if (state_ != State::kComplete) return {};
  return std::span<const uint8_t>(frame_.data() + 1, frame_.size() - 3);
}

std::string RtuReplyFramer::Describe() const {
  switch (state_) {
    case State::kComplete:
      return "complete " + std::to_string(frame_.size()) + "-byte reply";
    case State::kGarbage:
      return error_;
    case State::kNeedMore:
      break;
  }
  if (frame_.empty()) return "no reply";
  return "truncated reply: " + std::to_string(frame_.size()) + " of " +
         (expected_ ? std::to_string(expected_) : "at least 5") + " bytes";
}

RtuFrameScan ScanRtuReply(std::span<const uint8_t> bytes) {
  using State = RtuFrameScan::State;
  RtuFrameScan scan;
  if (bytes.size() < 2) return scan;
  scan.unit = bytes[0];
  const uint8_t fc = bytes[1] & 0x7F;
  if (fc < 1 || fc > 4 || bytes[0] == 0 || bytes[0] > kRtuMaxUnit) {
    scan.state = State::kNotAFrame;
    return scan;
  }
  size_t size = 5;
  if (!(bytes[1] & 0x80)) {
    if (bytes.size() < 3) return scan;
    size = 3 + bytes[2] + 2;
  }
  if (bytes.size() < size) return scan;
  const uint16_t got = static_cast<uint16_t>(bytes[size - 2] | bytes[size - 1] << 8);
  scan.state = got == Crc16Modbus(bytes.first(size - 2)) ? State::kFrame : State::kNotAFrame;
  scan.size = size;
  return scan;
}

core::Result<ReadRequest> DecodeRtuReadRequest(std::span<const uint8_t> adu) {
  if (adu.size() != kRtuReadRequestSize)
    return core::Status::InvalidArgument("RTU read request of " + std::to_string(adu.size()) +
                                         " bytes, expected 8");
  const uint16_t got = static_cast<uint16_t>(adu[6] | adu[7] << 8);
  const uint16_t want = Crc16Modbus(adu.first(6));
  if (got != want)
    return core::Status::InvalidArgument("CRC " + Hex16(got) + " received, " + Hex16(want) +
                                         " computed");
  MbapHeader h;
  h.unit = adu[0];
  return DecodeReadRequest(h, adu.subspan(1, 5));
}

std::vector<uint8_t> EncodeRtuReadResponse(uint8_t unit, Function fc,
                                           std::span<const uint16_t> values) {
  return FromMbap(EncodeReadResponse(0, unit, fc, values));
}

std::vector<uint8_t> EncodeRtuException(uint8_t unit, uint8_t function, uint8_t code) {
  return FromMbap(EncodeException(0, unit, function, code));
}

int RtuBitsPerChar(int data_bits, char parity, int stop_bits) {
  return 1 + data_bits + (parity == 'N' ? 0 : 1) + stop_bits;
}

std::chrono::nanoseconds RtuCharTime(int baud, int bits_per_char) {
  if (baud <= 0) return std::chrono::nanoseconds(0);
  return std::chrono::nanoseconds(1'000'000'000LL * bits_per_char / baud);
}

std::chrono::nanoseconds RtuInterFrameGap(int baud, int bits_per_char) {
  if (baud > 19200) return std::chrono::microseconds(1750);
  return RtuCharTime(baud, bits_per_char) * 7 / 2;
}

std::chrono::nanoseconds RtuWireTime(size_t bytes, int baud, int bits_per_char) {
  if (baud <= 0) return std::chrono::nanoseconds(0);
  return std::chrono::nanoseconds(1'000'000'000LL * bits_per_char * static_cast<long long>(bytes) /
                                  baud);
}

}  // namespace sitepower::modbus
