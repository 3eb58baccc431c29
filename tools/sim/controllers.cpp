#include "sim/controllers.hpp"

namespace sitepower::sim {

Controllers::Controllers() = default;
Controllers::~Controllers() { Stop(); }

int Controllers::Add(const modbus::RegisterMap& map, std::string* error) {
  const int i = farm_.Add(map, error);
  if (i < 0) return -1;
  entries_.push_back({false, i, farm_.port(i)});
  return static_cast<int>(entries_.size() - 1);
}

int Controllers::AddYdt(uint8_t adr, const ydt1363::YdtMap& map, std::string* error) {
  auto bus = std::make_unique<YdtBus>();
  if (bus->Add(adr, map, error) < 0) return -1;
  const uint16_t port = bus->ListenTcp(error);
  if (port == 0) return -1;
  ydt_.push_back(std::move(bus));
  entries_.push_back({true, static_cast<int>(ydt_.size() - 1), port});
  return static_cast<int>(entries_.size() - 1);
}

int Controllers::port(int index) const { return entries_.at(index).port; }

void Controllers::Set(int index, const ControllerState& state) {
  const Entry& e = entries_.at(index);
  if (e.ydt)
    ydt_[e.index]->Set(0, state);
  else
    farm_.Set(e.index, state);
}

void Controllers::SetFault(int index, Fault fault) {
  const Entry& e = entries_.at(index);
  if (!e.ydt) {
    farm_.SetFault(e.index, fault);
    return;
  }
  YdtFault f = YdtFault::kNone;
  switch (fault) {
    case Fault::kNone:
      f = YdtFault::kNone;
      break;
    case Fault::kTimeout:
    case Fault::kHalfOpen:
      f = YdtFault::kSilent;
      break;
    case Fault::kException:
      f = YdtFault::kRefuse;
      break;
    case Fault::kGarbage:
      f = YdtFault::kBadChecksum;
      break;
  }
  ydt_[e.index]->SetFault(0, f);
}

void Controllers::Start() {
  farm_.Start();
  for (auto& b : ydt_) b->Start();
}

void Controllers::Stop() {
  farm_.Stop();
  for (auto& b : ydt_) b->Stop();
}

}  // namespace sitepower::sim
