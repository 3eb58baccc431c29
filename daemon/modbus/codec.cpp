#include "modbus/codec.hpp"

#include <cstdio>

namespace sitepower::modbus {

bool IsBitFunction(Function f) {
  return f == Function::kReadCoils || f == Function::kReadDiscreteInputs;
}

std::vector<uint8_t> EncodeReadRequest(uint16_t tid, uint8_t unit, Function fc, uint16_t address,
                                       uint16_t count) {
  return {static_cast<uint8_t>(tid >> 8),
          static_cast<uint8_t>(tid & 0xFF),
          0,
          0,
          0,
          6,
          unit,
          static_cast<uint8_t>(fc),
          static_cast<uint8_t>(address >> 8),
          static_cast<uint8_t>(address & 0xFF),
          static_cast<uint8_t>(count >> 8),
          static_cast<uint8_t>(count & 0xFF)};
}

core::Result<MbapHeader> DecodeMbapHeader(std::span<const uint8_t> h) {
  if (h.size() < kMbapHeaderSize) return core::Status::InvalidArgument("MBAP header truncated");
  MbapHeader m;
  m.transaction_id = static_cast<uint16_t>(h[0] << 8 | h[1]);
  m.protocol_id = static_cast<uint16_t>(h[2] << 8 | h[3]);
  m.length = static_cast<uint16_t>(h[4] << 8 | h[5]);
  m.unit = h[6];
  if (m.protocol_id != 0)
    return core::Status::InvalidArgument("MBAP protocol id " + std::to_string(m.protocol_id) +
                                         " is not Modbus (0): garbage on the wire");
  if (m.length < 2 || m.length > 254)
    return core::Status::InvalidArgument("MBAP length " + std::to_string(m.length) +
                                         " out of range");
  return m;
}

std::string ExceptionName(uint8_t code) {
  const char* name = "unknown";
  switch (code) {
    case 1:
      name = "illegal function";
      break;
    case 2:
      name = "illegal data address";
      break;
    case 3:
      name = "illegal data value";
      break;
    case 4:
      name = "server device failure";
      break;
    case 5:
      name = "acknowledge";
      break;
    case 6:
      name = "server device busy";
      break;
    case 10:
      name = "gateway path unavailable";
      break;
    case 11:
      name = "gateway target failed to respond";
      break;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "exception 0x%02X (%s)", code, name);
  return buf;
}

core::Result<std::vector<uint16_t>> DecodeReadResponse(std::span<const uint8_t> pdu, Function fc,
                                                       uint16_t count) {
  if (pdu.empty()) return core::Status::InvalidArgument("empty PDU");
  const uint8_t f = pdu[0];
  if (f == (static_cast<uint8_t>(fc) | 0x80)) {
    if (pdu.size() < 2) return core::Status::InvalidArgument("exception PDU truncated");
    return core::Status::FailedPrecondition(ExceptionName(pdu[1]));
  }
  if (f != static_cast<uint8_t>(fc))
    return core::Status::InvalidArgument("function code " + std::to_string(f) + " in reply to " +
                                         std::to_string(static_cast<int>(fc)));
  if (pdu.size() < 2) return core::Status::InvalidArgument("PDU truncated");
  const size_t bytes = pdu[1];
  if (pdu.size() != 2 + bytes)
    return core::Status::InvalidArgument("byte count " + std::to_string(bytes) + " but " +
                                         std::to_string(pdu.size() - 2) + " data bytes");
  std::vector<uint16_t> out;
  if (IsBitFunction(fc)) {
    if (bytes != (count + 7u) / 8u)
      return core::Status::InvalidArgument("expected " + std::to_string((count + 7) / 8) +
                                           " bytes of bits, got " + std::to_string(bytes));
    out.reserve(count);
    for (uint16_t i = 0; i < count; ++i) out.push_back((pdu[2 + i / 8] >> (i % 8)) & 1);
  } else {
    if (bytes != 2u * count)
      return core::Status::InvalidArgument("expected " + std::to_string(2 * count) +
                                           " bytes of registers, got " + std::to_string(bytes));
    out.reserve(count);
    for (uint16_t i = 0; i < count; ++i)
      out.push_back(static_cast<uint16_t>(pdu[2 + 2 * i] << 8 | pdu[3 + 2 * i]));
  }
  return out;
}

}  // namespace sitepower::modbus
