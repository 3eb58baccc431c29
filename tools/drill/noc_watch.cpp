#include "drill/noc_watch.hpp"

#include "sitepower/v1/noc.grpc.pb.h"

namespace sitepower::drill {

NocWatch::NocWatch(const std::string& server, std::shared_ptr<grpc::ChannelCredentials> credentials,
                   std::string noc_token)
    : channel_(grpc::CreateChannel(server, std::move(credentials))), token_(std::move(noc_token)) {}

NocWatch::~NocWatch() { Stop(); }

void NocWatch::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this]() { Loop(); });
}

void NocWatch::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::map<std::string, core::TimePoint> NocWatch::MainsFailConfirmed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return confirmed_;
}

std::map<std::string, NocWatch::Band> NocWatch::PredictedAtConfirm() const {
  std::lock_guard<std::mutex> lock(mu_);
  return predicted_;
}

void NocWatch::Loop() {
  auto stub = v1::NocService::NewStub(channel_);
  while (!stop_) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token_);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    v1::ListSitesResponse resp;
    if (stub->ListSites(&ctx, v1::ListSitesRequest{}, &resp).ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& site : resp.sites()) {
        if (site.mains_fail_unix_ms() <= 0) continue;
        confirmed_.emplace(site.site_id(),
                           core::TimePoint(core::Millis(site.mains_fail_unix_ms())));
        const auto& r = site.runtime();
        if (site.has_runtime() && r.at_unix_ms() > 0 && !predicted_.count(site.site_id())) {
          const double since =
              static_cast<double>(r.at_unix_ms() - site.mains_fail_unix_ms()) / 60000;
          predicted_[site.site_id()] = {since + r.p10_min(), since + r.p50_min(),
                                        since + r.p90_min()};
        }
      }
    }
    // The daemon keeps the time it confirmed, so asking 4 times a (wall)
    // second loses only a failure that also ended within that time.
    for (int i = 0; i < 5 && !stop_; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace sitepower::drill
