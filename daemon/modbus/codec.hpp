// Modbus TCP (MBAP) framing and PDU coding. Pure: bytes in, values out; tested
// byte for byte and against libmodbus as an independent peer.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.hpp"

namespace sitepower::modbus {

inline constexpr size_t kMbapHeaderSize = 7;  // tid(2) pid(2) len(2) unit(1)
inline constexpr uint16_t kMaxRegistersPerRead = 125;
inline constexpr uint16_t kMaxBitsPerRead = 2000;

// Function codes we read with.
enum class Function : uint8_t {
  kReadCoils = 1,
  kReadDiscreteInputs = 2,
  kReadHoldingRegisters = 3,
  kReadInputRegisters = 4,
};
bool IsBitFunction(Function f);

// A complete read request ADU (12 bytes).
std::vector<uint8_t> EncodeReadRequest(uint16_t transaction_id, uint8_t unit, Function fc,
                                       uint16_t address, uint16_t count);

// The same 12 bytes appended to `out` (no allocation once `out` has room).
void AppendReadRequest(std::vector<uint8_t>* out, uint16_t transaction_id, uint8_t unit,
                       Function fc, uint16_t address, uint16_t count);

struct MbapHeader {
  uint16_t transaction_id = 0;
  uint16_t protocol_id = 0;
  uint16_t length = 0;  // bytes after the length field: unit + PDU
  uint8_t unit = 0;
};
// Parses the 7-byte header; rejects a non-zero protocol id and lengths outside 2..254.
core::Result<MbapHeader> DecodeMbapHeader(std::span<const uint8_t> header);

// Decodes the PDU of a read response (function code onwards). Registers come
// back as words, bits as 0/1 words. An exception response gives
// FailedPrecondition "exception 0x02 (illegal data address)"; a malformed or
// mismatched PDU gives InvalidArgument naming what is wrong.
core::Result<std::vector<uint16_t>> DecodeReadResponse(std::span<const uint8_t> pdu, Function fc,
                                                       uint16_t count);

// The same, into `out` (cleared first; its capacity is reused across polls).
core::Status DecodeReadResponseInto(std::span<const uint8_t> pdu, Function fc, uint16_t count,
                                    std::vector<uint16_t>* out);

std::string ExceptionName(uint8_t code);

// The Modbus exception code a read failed with (the FailedPrecondition that
// DecodeReadResponse gives, with or without context before it); nullopt for
// any other status. 0x01 (illegal function) and 0x02 (illegal data address)
// say the device does not have what was asked, not that it failed.
std::optional<uint8_t> ExceptionCodeOf(const core::Status& status);
inline bool IsRefusal(std::optional<uint8_t> exception) {
  return exception == 0x01 || exception == 0x02;
}

// The server side, for simulated controllers (tools/farm) and tests.
struct ReadRequest {
  uint16_t transaction_id = 0;
  uint8_t unit = 0;
  uint8_t function = 0;  // as received; may be one we do not serve
  uint16_t address = 0, count = 0;
};
// Parses a request PDU (function code onwards) after its MBAP header.
core::Result<ReadRequest> DecodeReadRequest(const MbapHeader& header, std::span<const uint8_t> pdu);
// A read response ADU: registers as words, bits as 0/1 values.
std::vector<uint8_t> EncodeReadResponse(uint16_t transaction_id, uint8_t unit, Function fc,
                                        std::span<const uint16_t> values);
// An exception response ADU (function | 0x80, code).
std::vector<uint8_t> EncodeException(uint16_t transaction_id, uint8_t unit, uint8_t function,
                                     uint8_t code);

}  // namespace sitepower::modbus
