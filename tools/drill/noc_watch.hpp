// Watches the daemon's NOC view during a drill (NocService.ListSites, a
// real gRPC client with the drill's NOC token): when the daemon confirmed
// each site's mains failure, as the daemon itself timestamps it. The drill
// report's `daemon_mains_fail_at`. Own thread; a daemon that is down or
// restarting is simply asked again.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include "core/time.hpp"

namespace sitepower::drill {

class NocWatch {
 public:
  NocWatch(const std::string& server, std::shared_ptr<grpc::ChannelCredentials> credentials,
           std::string noc_token);
  ~NocWatch();  // stops
  NocWatch(const NocWatch&) = delete;
  NocWatch& operator=(const NocWatch&) = delete;
  void Start();
  void Stop();
  // Thread-safe: per site, the first mains failure the daemon reported (a
  // later one after mains returned does not replace it, as in FORMAT.md v1).
  std::map<std::string, core::TimePoint> MainsFailConfirmed() const;
  // Thread-safe: per site, the runtime band the daemon showed when it first
  // showed the failure, as minutes from the confirmed mains failure (p10,
  // p50, p90): what the plan leaned on, to set beside the true runtime.
  struct Band {
    double p10 = 0, p50 = 0, p90 = 0;
  };
  std::map<std::string, Band> PredictedAtConfirm() const;

 private:
  void Loop();
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;  // guards confirmed_
  std::map<std::string, core::TimePoint> confirmed_;
  std::map<std::string, Band> predicted_;
};

}  // namespace sitepower::drill
