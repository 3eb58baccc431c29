// YD/T 1363.3 ("电总协议", YDN23) frames. Pure: bytes in, values out; tested
// byte for byte against public captures (frame_test.cpp names each source).
//
// A frame is ASCII: SOI '~', then VER ADR CID1 CID2(RTN in a reply) as two hex
// digits each, LENGTH as four (LCHKSUM nibble + 12-bit LENID = number of INFO
// characters), INFO (each byte as two hex digits), CHKSUM as four hex digits,
// EOI '\r'. CHKSUM is the two's complement (mod 65536) of the sum of the ASCII
// codes between SOI and CHKSUM; LCHKSUM is the two's complement (mod 16) of
// the sum of LENID's three nibbles.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.hpp"

namespace sitepower::ydt1363 {

inline constexpr uint8_t kSoi = '~';
inline constexpr uint8_t kEoi = '\r';
// LENID has 12 bits and counts ASCII characters, two per INFO byte.
inline constexpr size_t kMaxInfoBytes = 0xFFF / 2;
// SOI + VER ADR CID1 CID2 (8) + LENGTH (4) + CHKSUM (4) + EOI.
inline constexpr size_t kFrameOverhead = 18;
inline constexpr size_t kMaxFrameBytes = kFrameOverhead + 2 * kMaxInfoBytes;

// One frame, decoded. In a reply `cid2` is the return code (RTN).
struct Frame {
  uint8_t ver = 0x20;
  uint8_t adr = 1;
  uint8_t cid1 = 0;
  uint8_t cid2 = 0;
  std::vector<uint8_t> info;  // binary: INFO's hex pairs decoded
  bool operator==(const Frame&) const = default;
};

// The LENGTH field for an INFO of `lenid` characters (LCHKSUM in the top
// nibble). `lenid` above 0xFFF is a programmer error (it is masked).
uint16_t LengthField(uint16_t lenid);
// CHKSUM over the ASCII characters between SOI and CHKSUM.
uint16_t FrameChecksum(std::span<const uint8_t> ascii);

// The whole frame, '~' to '\r'. INFO longer than kMaxInfoBytes is a
// programmer error (truncated to it).
std::vector<uint8_t> EncodeFrame(const Frame& f);
// The same, appended to `out` (no allocation once `out` has room).
void AppendFrame(std::vector<uint8_t>* out, const Frame& f);

// Decodes one complete frame, SOI to EOI inclusive. Errors (InvalidArgument)
// name what is wrong: "no SOI", "no EOI", "non-hex character 'G' at 7",
// "length: LENID 0x06E says 110 INFO characters, frame has 108",
// "length: LCHKSUM 0xD, expected 0xC", "length: LENID 0x005 is odd",
// "checksum: frame says 0xFDA5, computed 0xFDA4". RTN is not checked here.
core::Result<Frame> DecodeFrame(std::span<const uint8_t> bytes);

// Return codes (RTN, the CID2 of a reply), YD/T 1363.3 table "RTN".
enum class Rtn : uint8_t {
  kOk = 0x00,
  kBadVer = 0x01,
  kBadChksum = 0x02,
  kBadLchksum = 0x03,
  kBadCid2 = 0x04,
  kBadFormat = 0x05,
  kBadData = 0x06,
};
// "bad CHKSUM (RTN 0x02)"; 0x80-0xEF "user-defined error (RTN 0x81)".
std::string RtnName(uint8_t rtn);

// Checks a reply against the request it answers: the same ADR and CID1, and
// RTN 0. Errors: InvalidArgument "reply from ADR 0x03, asked ADR 0x02" or
// "reply CID1 0x42, asked 0x46" (someone else's answer on the bus);
// FailedPrecondition "RTN 0x04: CID2 invalid" (the device refused: it
// understood the frame and said no). VER is not compared: devices answer with
// their own version.
core::Status CheckReply(const Frame& reply, const Frame& request);

// Finds frames in a byte stream (serial line or TCP gateway): bytes before a
// SOI are noise, a frame ends at EOI. A frame longer than kMaxFrameBytes is
// dropped whole. Not thread-safe; one per stream.
class FrameSplitter {
 public:
  // Feeds bytes; returns the number of complete frames now available.
  size_t Feed(std::span<const uint8_t> bytes);
  // The oldest complete frame (SOI..EOI), removed; empty when none.
  std::vector<uint8_t> Next();
  // Bytes discarded as noise or overlong since construction.
  uint64_t discarded() const { return discarded_; }
  // Forgets a partial frame and any frame not taken yet (before a request:
  // whatever is there is someone's late reply). They count as discarded.
  void Reset();
  bool mid_frame() const { return in_frame_; }

 private:
  std::vector<uint8_t> partial_;
  std::vector<std::vector<uint8_t>> ready_;
  bool in_frame_ = false;
  uint64_t discarded_ = 0;
};

}  // namespace sitepower::ydt1363
