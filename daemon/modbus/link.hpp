// A link to one Modbus endpoint, shared by every unit id polled there: a
// Modbus TCP connection (connection.hpp), or an RTU bus -- a serial line or an
// RTU-over-TCP gateway (rtu_link.hpp). The poller sees only this interface.
//
// Contract for implementations: Transact never throws and always finishes
// within its timeout plus whatever queueing the implementation documents; a
// unit that does not answer costs only its own requests, never the link for
// the others; the link reopens by itself after it was lost. Single-threaded:
// use it on its io_context's thread only.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "core/time.hpp"
#include "modbus/register_map.hpp"

namespace sitepower::modbus {

struct LinkStats {
  uint64_t connects = 0, connect_failures = 0, requests = 0, timeouts = 0, late_replies = 0,
           drops = 0;
  uint64_t answers = 0;  // replies matched to their request (data or a Modbus exception)
  size_t max_in_flight_seen = 0;
};

// One poll's reads from one unit, owned by whoever submits it and reused from
// poll to poll (no allocation once warm). While submitted it belongs to the
// link; `on_done` hands it back.
struct ReadBatch {
  // In.
  uint8_t unit = 0;
  std::span<const ReadBlock> blocks;
  core::Millis timeout{1500};  // per request, from when it is sent
  // Called once per Submit on the link's thread, never from inside Submit.
  std::function<void(ReadBatch&)> on_done;
  std::shared_ptr<void> owner;  // kept alive until on_done has returned
  // Out.
  std::vector<std::vector<uint16_t>> data;  // one per block
  core::Status status;                      // the first error (in block order), naming it

  // The link's bookkeeping.
  struct Request {
    ReadBatch* batch = nullptr;
    size_t index = 0;
    enum class State : uint8_t { kIdle, kQueued, kSent, kDone } state = State::kIdle;
    uint16_t tid = 0;
    std::chrono::steady_clock::time_point sent_at{}, deadline{};
    core::Status status;
  };
  std::vector<Request> requests;
  size_t remaining = 0;
  std::chrono::steady_clock::time_point queue_deadline{};
};

class Link {
 public:
  virtual ~Link() = default;
  // Reads `block` from `unit`. Errors: Unavailable (connect or link),
  // DeadlineExceeded (no answer within timeout), FailedPrecondition (Modbus
  // exception reply), InvalidArgument (malformed reply). Messages name the
  // unit, function code and register.
  virtual boost::asio::awaitable<core::Result<std::vector<uint16_t>>> Transact(
      uint8_t unit, ReadBlock block, core::Millis timeout) = 0;
  // Reads every block of `blocks` from `unit` (one poll), pipelined where the
  // link allows, into `out` (one vector per block; capacity reused). The
  // first error (in block order) is returned, naming the block. The default
  // reads the blocks one after the other with Transact.
  virtual boost::asio::awaitable<core::Status> TransactAll(uint8_t unit,
                                                           std::span<const ReadBlock> blocks,
                                                           core::Millis timeout,
                                                           std::vector<std::vector<uint16_t>>* out);
  // The allocation-free path for a poll: queues `batch` and returns at once;
  // `batch->on_done` runs when every block is read or failed. Links that do
  // not have it return false (the poller then drives them through
  // TransactAll). After Shutdown, a submitted batch is finished at once.
  virtual bool Submit(ReadBatch* /*batch*/) { return false; }
  // Requests queued or in flight right now (the bench's "in flight").
  virtual size_t outstanding() const { return 0; }
  // How many requests may be on the wire at once (1 for a sequential bus).
  virtual size_t in_flight_limit() const { return 1; }
  // Lowers the in-flight limit (several maps on one endpoint: the strictest
  // wins). A bus that is sequential by nature ignores it.
  virtual void LimitInFlight(size_t n) = 0;
  // Fails everything queued or in flight and refuses every later request.
  virtual void Shutdown() = 0;
  virtual const std::string& name() const = 0;
  virtual const LinkStats& stats() const = 0;
};

}  // namespace sitepower::modbus
