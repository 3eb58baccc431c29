// When each device is polled. Pure: the poller (poller.cpp) feeds it the
// clock and the endpoints; tests call it directly.
//
// Polls happen on a fixed grid, epoch + (k + phase) x interval, so a device's
// polls do not drift and a slow poll only skips the slots it overran. Phases
// spread a region evenly over the interval: the units behind one endpoint are
// polled in groups that fit its pipeline (a group's requests leave in one
// write), the groups of an endpoint are spread evenly over the interval, and
// the endpoints interleave inside each group's slot.
#pragma once

#include <chrono>
#include <cstddef>

#include "core/time.hpp"

namespace sitepower::modbus {

// Phase in [0, 1) of unit `index` of `units` on endpoint `endpoint` of
// `endpoints`, polled in groups of `group` units (at least 1).
double PollPhase(size_t index, size_t units, size_t group, size_t endpoint, size_t endpoints);

// How many units of an endpoint go in one group: as many polls as its
// pipeline holds at once (`in_flight` requests, `blocks` requests a poll).
size_t PollGroupSize(size_t in_flight, size_t blocks);

// The first grid point epoch + (k + phase) x interval, k >= 0, at or after
// `earliest`. An interval of 0 means back to back: `earliest` itself.
std::chrono::steady_clock::time_point NextSlot(std::chrono::steady_clock::time_point epoch,
                                               core::Millis interval, double phase,
                                               std::chrono::steady_clock::time_point earliest);

// Exponential backoff after `failures` consecutive failures (0: none):
// base x 2^(failures-1), at most 2^max_doublings x base and at most `cap`,
// times a jitter factor in [0.8, 1.2) from `unit_random` in [0, 1), so that
// the devices of a gateway that comes back are not all retried in the same
// instant. Devices (poller), TCP connects and RTU reopens all back off so.
core::Millis Backoff(int failures, core::Millis base, core::Millis cap, double unit_random,
                     int max_doublings = 6);

}  // namespace sitepower::modbus
