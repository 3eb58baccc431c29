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

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "core/time.hpp"
#include "modbus/register_map.hpp"

namespace sitepower::modbus {

struct LinkStats {
  uint64_t connects = 0, connect_failures = 0, requests = 0, timeouts = 0, late_replies = 0,
           drops = 0;
  size_t max_in_flight_seen = 0;
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
  // Lowers the in-flight limit (several maps on one endpoint: the strictest
  // wins). A bus that is sequential by nature ignores it.
  virtual void LimitInFlight(size_t n) = 0;
  // Fails everything queued or in flight and refuses every later request.
  virtual void Shutdown() = 0;
  virtual const std::string& name() const = 0;
  virtual const LinkStats& stats() const = 0;
};

}  // namespace sitepower::modbus
