#include "modbus/codec.hpp"

#include <cstdio>

namespace sitepower::modbus {

bool IsBitFunction(Function f) {
  return f == Function::kReadCoils || f == Function::kReadDiscreteInputs;
}

std::vector<uint8_t> EncodeReadRequest(uint16_t tid, uint8_t unit, Function fc, uint16_t address,
                                       uint16_t count) {
  std::vector<uint8_t> out;
  AppendReadRequest(&out, tid, unit, fc, address, count);
  return out;
}

void AppendReadRequest(std::vector<uint8_t>* out, uint16_t tid, uint8_t unit, Function fc,
                       uint16_t address, uint16_t count) {
  const uint8_t frame[12] = {static_cast<uint8_t>(tid >> 8),
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
  out->insert(out->end(), frame, frame + sizeof frame);
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

std::optional<uint8_t> ExceptionCodeOf(const core::Status& status) {
  if (status.code() != core::Status::Code::kFailedPrecondition) return std::nullopt;
  // ExceptionName's "exception 0x%02X": the one place that writes it.
  const std::string& m = status.message();
  const size_t at = m.find("exception 0x");
  if (at == std::string::npos || at + 14 > m.size()) return std::nullopt;
  unsigned code = 0;
  for (size_t i = at + 12; i < at + 14; ++i) {
    const char c = m[i];
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) return std::nullopt;
    code = code * 16 + static_cast<unsigned>(digit);
  }
  return static_cast<uint8_t>(code);
}

core::Result<std::vector<uint16_t>> DecodeReadResponse(std::span<const uint8_t> pdu, Function fc,
                                                       uint16_t count) {
  std::vector<uint16_t> out;
  if (auto st = DecodeReadResponseInto(pdu, fc, count, &out); !st.ok()) return st;
  return out;
}

core::Status DecodeReadResponseInto(std::span<const uint8_t> pdu, Function fc, uint16_t count,
                                    std::vector<uint16_t>* out) {
  out->clear();
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
  if (IsBitFunction(fc)) {
    if (bytes != (count + 7u) / 8u)
      return core::Status::InvalidArgument("expected " + std::to_string((count + 7) / 8) +
                                           " bytes of bits, got " + std::to_string(bytes));
    out->resize(count);
    for (uint16_t i = 0; i < count; ++i) (*out)[i] = (pdu[2 + i / 8] >> (i % 8)) & 1;
  } else {
    if (bytes != 2u * count)
      return core::Status::InvalidArgument("expected " + std::to_string(2 * count) +
                                           " bytes of registers, got " + std::to_string(bytes));
    out->resize(count);
    for (uint16_t i = 0; i < count; ++i)
      (*out)[i] = static_cast<uint16_t>(pdu[2 + 2 * i] << 8 | pdu[3 + 2 * i]);
  }
  return core::Status::Ok();
}

namespace {
void PutMbap(std::vector<uint8_t>& out, uint16_t tid, uint8_t unit, size_t pdu_len) {
  const size_t len = pdu_len + 1;
  out = {static_cast<uint8_t>(tid >> 8), static_cast<uint8_t>(tid & 0xFF), 0,   0,
         static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len & 0xFF), unit};
}
}  // namespace

core::Result<ReadRequest> DecodeReadRequest(const MbapHeader& h, std::span<const uint8_t> pdu) {
  if (pdu.size() != 5)
    return core::Status::InvalidArgument("read request PDU of " + std::to_string(pdu.size()) +
                                         " bytes, expected 5");
  ReadRequest r;
  r.transaction_id = h.transaction_id;
  r.unit = h.unit;
  r.function = pdu[0];
  r.address = static_cast<uint16_t>(pdu[1] << 8 | pdu[2]);
  r.count = static_cast<uint16_t>(pdu[3] << 8 | pdu[4]);
  return r;
}

std::vector<uint8_t> EncodeReadResponse(uint16_t tid, uint8_t unit, Function fc,
                                        std::span<const uint16_t> values) {
  std::vector<uint8_t> out;
  if (IsBitFunction(fc)) {
    const size_t bytes = (values.size() + 7) / 8;
    PutMbap(out, tid, unit, 2 + bytes);
    out.push_back(static_cast<uint8_t>(fc));
    out.push_back(static_cast<uint8_t>(bytes));
    for (size_t b = 0; b < bytes; ++b) {
      uint8_t byte = 0;
      for (size_t k = 0; k < 8 && b * 8 + k < values.size(); ++k)
        if (values[b * 8 + k]) byte |= static_cast<uint8_t>(1u << k);
      out.push_back(byte);
    }
  } else {
    PutMbap(out, tid, unit, 2 + 2 * values.size());
    out.push_back(static_cast<uint8_t>(fc));
    out.push_back(static_cast<uint8_t>(2 * values.size()));
    for (uint16_t v : values) {
      out.push_back(static_cast<uint8_t>(v >> 8));
      out.push_back(static_cast<uint8_t>(v & 0xFF));
    }
  }
  return out;
}

std::vector<uint8_t> EncodeException(uint16_t tid, uint8_t unit, uint8_t function, uint8_t code) {
  std::vector<uint8_t> out;
  PutMbap(out, tid, unit, 2);
  out.push_back(static_cast<uint8_t>(function | 0x80));
  out.push_back(code);
  return out;
}

}  // namespace sitepower::modbus
