#include "ydt1363/frame.hpp"

#include <algorithm>
#include <cstdio>

namespace sitepower::ydt1363 {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

void AppendHex(std::vector<uint8_t>* out, uint32_t v, int digits) {
  for (int i = digits - 1; i >= 0; --i) out->push_back(kHex[(v >> (4 * i)) & 0xF]);
}

// Value of one hex digit; -1 when it is not one (lower case is accepted:
// some devices send it).
int HexDigit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string Hex(uint32_t v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*X", digits, v);
  return buf;
}

std::string Printable(uint8_t c) {
  if (c >= 0x20 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
  return Hex(c, 2);
}

}  // namespace

uint16_t LengthField(uint16_t lenid) {
  lenid &= 0xFFF;
  const unsigned sum = (lenid & 0xF) + ((lenid >> 4) & 0xF) + ((lenid >> 8) & 0xF);
  const unsigned lchk = (~sum + 1) & 0xF;
  return static_cast<uint16_t>(lchk << 12 | lenid);
}

uint16_t FrameChecksum(std::span<const uint8_t> ascii) {
  uint32_t sum = 0;
  for (uint8_t c : ascii) sum += c;
  return static_cast<uint16_t>(~sum + 1);
}

void AppendFrame(std::vector<uint8_t>* out, const Frame& f) {
  const size_t info = std::min(f.info.size(), kMaxInfoBytes);
  const size_t start = out->size();
  out->push_back(kSoi);
  AppendHex(out, f.ver, 2);
  AppendHex(out, f.adr, 2);
  AppendHex(out, f.cid1, 2);
  AppendHex(out, f.cid2, 2);
  AppendHex(out, LengthField(static_cast<uint16_t>(2 * info)), 4);
  for (size_t i = 0; i < info; ++i) AppendHex(out, f.info[i], 2);
  const uint16_t chk =
      FrameChecksum(std::span<const uint8_t>(out->data() + start + 1, out->size() - start - 1));
  AppendHex(out, chk, 4);
  out->push_back(kEoi);
}

std::vector<uint8_t> EncodeFrame(const Frame& f) {
  std::vector<uint8_t> out;
  out.reserve(kFrameOverhead + 2 * f.info.size());
  AppendFrame(&out, f);
  return out;
}

core::Result<Frame> DecodeFrame(std::span<const uint8_t> b) {
  using core::Status;
  if (b.empty() || b.front() != kSoi) return Status::InvalidArgument("no SOI ('~') at the start");
  if (b.back() != kEoi) return Status::InvalidArgument("no EOI (CR) at the end");
  if (b.size() < kFrameOverhead)
    return Status::InvalidArgument("length: frame of " + std::to_string(b.size()) +
                                   " bytes is shorter than the " + std::to_string(kFrameOverhead) +
                                   " of an empty frame");
  // Every character between SOI and EOI must be a hex digit.
  for (size_t i = 1; i + 1 < b.size(); ++i)
    if (HexDigit(b[i]) < 0)
      return Status::InvalidArgument("non-hex character " + Printable(b[i]) + " at " +
                                     std::to_string(i));
  auto byte_at = [&b](size_t i) {
    return static_cast<uint8_t>(HexDigit(b[i]) << 4 | HexDigit(b[i + 1]));
  };
  Frame f;
  f.ver = byte_at(1);
  f.adr = byte_at(3);
  f.cid1 = byte_at(5);
  f.cid2 = byte_at(7);
  const uint16_t length = static_cast<uint16_t>(byte_at(9) << 8 | byte_at(11));
  const uint16_t lenid = length & 0xFFF;
  const size_t have = b.size() - kFrameOverhead;
  if (lenid != have)
    return Status::InvalidArgument("length: LENID " + Hex(lenid, 3) + " says " +
                                   std::to_string(lenid) + " INFO characters, frame has " +
                                   std::to_string(have));
  if (LengthField(lenid) != length)
    return Status::InvalidArgument("length: LCHKSUM " + Hex(length >> 12, 1) + ", expected " +
                                   Hex(LengthField(lenid) >> 12, 1));
  if (lenid % 2)
    return Status::InvalidArgument("length: LENID " + Hex(lenid, 3) +
                                   " is odd (INFO is whole bytes)");
  const size_t chk_at = b.size() - 5;
  const uint16_t said = static_cast<uint16_t>(byte_at(chk_at) << 8 | byte_at(chk_at + 2));
  const uint16_t computed = FrameChecksum(b.subspan(1, chk_at - 1));
  if (said != computed)
    return Status::InvalidArgument("checksum: frame says " + Hex(said, 4) + ", computed " +
                                   Hex(computed, 4));
  f.info.reserve(lenid / 2);
  for (size_t i = 13; i < chk_at; i += 2) f.info.push_back(byte_at(i));
  return f;
}

std::string RtnName(uint8_t rtn) {
  const std::string code = " (RTN " + Hex(rtn, 2) + ")";
  switch (static_cast<Rtn>(rtn)) {
    case Rtn::kOk:
      return "ok" + code;
    case Rtn::kBadVer:
      return "VER not supported" + code;
    case Rtn::kBadChksum:
      return "bad CHKSUM" + code;
    case Rtn::kBadLchksum:
      return "bad LCHKSUM in LENGTH" + code;
    case Rtn::kBadCid2:
      return "CID2 invalid" + code;
    case Rtn::kBadFormat:
      return "command format error" + code;
    case Rtn::kBadData:
      return "invalid data" + code;
  }
  if (rtn >= 0x80 && rtn <= 0xEF) return "user-defined error" + code;
  return "unknown return code" + code;
}

core::Status CheckReply(const Frame& reply, const Frame& request) {
  if (reply.adr != request.adr)
    return core::Status::InvalidArgument("reply from ADR " + Hex(reply.adr, 2) + ", asked ADR " +
                                         Hex(request.adr, 2));
  if (reply.cid1 != request.cid1)
    return core::Status::InvalidArgument("reply CID1 " + Hex(reply.cid1, 2) + ", asked " +
                                         Hex(request.cid1, 2));
  if (reply.cid2 != static_cast<uint8_t>(Rtn::kOk))
    return core::Status::FailedPrecondition("device refused CID1 " + Hex(request.cid1, 2) +
                                            " CID2 " + Hex(request.cid2, 2) + ": " +
                                            RtnName(reply.cid2));
  return core::Status::Ok();
}

size_t FrameSplitter::Feed(std::span<const uint8_t> bytes) {
  for (uint8_t c : bytes) {
    if (c == kSoi) {
      // A SOI inside a frame starts over: the earlier part was a torn frame.
      discarded_ += partial_.size();
      partial_.clear();
      partial_.push_back(c);
      in_frame_ = true;
      continue;
    }
    if (!in_frame_) {
      ++discarded_;
      continue;
    }
    partial_.push_back(c);
    if (c == kEoi) {
      ready_.push_back(std::move(partial_));
      partial_ = {};
      in_frame_ = false;
    } else if (partial_.size() >= kMaxFrameBytes) {
      discarded_ += partial_.size();
      partial_.clear();
      in_frame_ = false;
    }
  }
  return ready_.size();
}

void FrameSplitter::Reset() {
  discarded_ += partial_.size();
  for (const auto& f : ready_) discarded_ += f.size();
  partial_.clear();
  ready_.clear();
  in_frame_ = false;
}

std::vector<uint8_t> FrameSplitter::Next() {
  if (ready_.empty()) return {};
  std::vector<uint8_t> f = std::move(ready_.front());
  ready_.erase(ready_.begin());
  return f;
}

}  // namespace sitepower::ydt1363
