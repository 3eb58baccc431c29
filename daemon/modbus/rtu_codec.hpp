// Modbus RTU framing (serial lines and RTU-over-TCP gateways): CRC-16/MODBUS,
// read request ADUs, an incremental reply framer, and line timing. Pure:
// bytes in, values out; the PDU layout is codec.hpp's. Tested byte for byte
// and against libmodbus and pymodbus as independent peers.
//
// An RTU ADU is: unit (1) | PDU (function code onwards) | CRC (2, low byte
// first). There is no length field: a receiver knows where a reply ends from
// its function code (read replies 3 + N + 2 bytes, N the byte count in the
// third byte; exception replies 5 bytes). Modbus over Serial Line V1.02 §2.5.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "modbus/codec.hpp"

namespace sitepower::modbus {

inline constexpr size_t kRtuReadRequestSize = 8;  // unit fc addr(2) count(2) crc(2)
inline constexpr size_t kRtuMaxAduSize = 256;
inline constexpr uint8_t kRtuMaxUnit = 247;  // 0 is broadcast, 248-255 reserved

// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF). On the wire the low
// byte goes first.
uint16_t Crc16Modbus(std::span<const uint8_t> bytes);

// A complete read request ADU (8 bytes).
std::vector<uint8_t> EncodeRtuReadRequest(uint8_t unit, Function fc, uint16_t address,
                                          uint16_t count);

// Frames the reply to one read request from bytes fed as they arrive. It
// knows the frame's length after its first three bytes and checks, as early
// as it can: the unit (a reply from another unit is garbage, never an answer),
// the function code (the request's, or it | 0x80 for an exception), the byte
// count the request implies, then the CRC over the whole frame.
class RtuReplyFramer {
 public:
  enum class State { kNeedMore, kComplete, kGarbage };
  RtuReplyFramer(uint8_t unit, Function fc, uint16_t count);

  // Takes bytes up to the end of the frame; what comes after a complete
  // frame (or after garbage was seen) is counted in ignored(), not framed.
  State Feed(std::span<const uint8_t> bytes);
  State state() const { return state_; }
  // The PDU (function code onwards, without unit and CRC), for
  // DecodeReadResponse. Empty unless complete.
  std::span<const uint8_t> pdu() const;
  // What was wrong, when garbage; for an incomplete frame, how much is missing.
  std::string Describe() const;
  size_t received() const { return frame_.size(); }
  size_t expected_size() const { return expected_; }  // 0 until known
  size_t ignored() const { return ignored_; }
  // The size of a complete normal (non-exception) reply to this request.
  size_t reply_size() const;

 private:
  uint8_t unit_;
  Function fc_;
  uint16_t count_;
  State state_ = State::kNeedMore;
  size_t expected_ = 0;
  size_t ignored_ = 0;
  std::vector<uint8_t> frame_;
  std::string error_;
};

// Looks for a whole read reply or exception frame from any unit at the start
// of `bytes` (a late reply of another unit on a shared bus): its size once
// complete with a valid CRC; kNeedMore while it may still become one.
struct RtuFrameScan {
  enum class State { kNeedMore, kFrame, kNotAFrame } state = State::kNeedMore;
  size_t size = 0;  // kFrame: its length
  uint8_t unit = 0;
};
RtuFrameScan ScanRtuReply(std::span<const uint8_t> bytes);

// The server side, for simulated gateways and tests.
// Parses one complete read request ADU (8 bytes, CRC checked).
core::Result<ReadRequest> DecodeRtuReadRequest(std::span<const uint8_t> adu);
// A read response ADU: registers as words, bits as 0/1 values.
std::vector<uint8_t> EncodeRtuReadResponse(uint8_t unit, Function fc,
                                           std::span<const uint16_t> values);
// An exception response ADU (function | 0x80, code).
std::vector<uint8_t> EncodeRtuException(uint8_t unit, uint8_t function, uint8_t code);
// Appends the CRC of `adu` to it (low byte first).
void AppendCrc(std::vector<uint8_t>& adu);

// Line timing (Modbus over Serial Line V1.02 §2.5.1.1). A character is
// start + data + parity + stop bits; frames are separated by at least 3.5
// character times of silence, a fixed 1750 us above 19200 baud.
int RtuBitsPerChar(int data_bits, char parity, int stop_bits);
std::chrono::nanoseconds RtuCharTime(int baud, int bits_per_char);
std::chrono::nanoseconds RtuInterFrameGap(int baud, int bits_per_char);
// How long `bytes` characters take on the line.
std::chrono::nanoseconds RtuWireTime(size_t bytes, int baud, int bits_per_char);

}  // namespace sitepower::modbus
