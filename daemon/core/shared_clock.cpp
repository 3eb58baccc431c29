#include "core/shared_clock.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace sitepower::core {

namespace {
constexpr uint64_t kMagic = 0x5350434c4f434b31;  // "SPCLOCK1"

int64_t WallMs() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

struct SharedClock::Shared {
  std::atomic<uint64_t> magic;
  std::atomic<uint64_t> seq;  // odd while the holder writes
  std::atomic<int64_t> scenario_anchor_ms, wall_anchor_ms, hold_wall_ms, max_hold_ms;
  std::atomic<double> speed;

  struct Snapshot {
    int64_t scenario_anchor, wall_anchor, hold_wall, max_hold;
    double speed;
    int64_t At(int64_t wall) const {
      auto run = [this](int64_t ms) {
        return static_cast<int64_t>(static_cast<double>(ms) * speed);
      };
      if (hold_wall == 0) return scenario_anchor + run(wall - wall_anchor);
      const int64_t frozen = scenario_anchor + run(hold_wall - wall_anchor);
      const int64_t resumed = hold_wall + max_hold;
      return wall <= resumed ? frozen : frozen + run(wall - resumed);
    }
  };
  Snapshot Read() const {
    for (;;) {
      uint64_t s1 = seq.load(std::memory_order_acquire);
      if (s1 & 1) continue;
      Snapshot s{scenario_anchor_ms.load(std::memory_order_relaxed),
                 wall_anchor_ms.load(std::memory_order_relaxed),
                 hold_wall_ms.load(std::memory_order_relaxed),
                 max_hold_ms.load(std::memory_order_relaxed),
                 speed.load(std::memory_order_relaxed)};
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq.load(std::memory_order_relaxed) == s1) return s;
    }
  }
  template <typename F>
  void Write(F&& f) {
    seq.fetch_add(1, std::memory_order_acq_rel);
    f();
    seq.fetch_add(1, std::memory_order_release);
  }
};

namespace {
Result<void*> Map(const std::string& path, bool create) {
  int fd = ::open(path.c_str(), create ? O_RDWR | O_CREAT | O_TRUNC : O_RDWR, 0644);
  if (fd < 0) return Status::Unavailable("clock file " + path + ": " + std::strerror(errno));
  const size_t size = 4096;
  if (create && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    ::close(fd);
    return Status::Unavailable("clock file " + path + ": " + std::strerror(e));
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) return Status::Unavailable("clock file " + path + ": " + std::strerror(e));
  return p;
}
}  // namespace

Result<std::unique_ptr<SharedClock>> SharedClock::Create(const std::string& path, TimePoint epoch,
                                                         TimePoint wall_epoch, double speed,
                                                         Millis max_hold) {
  auto p = Map(path, true);
  if (!p.ok()) return p.status();
  auto* s = new (*p) Shared{};
  s->scenario_anchor_ms = epoch.time_since_epoch().count();
  s->wall_anchor_ms = wall_epoch.time_since_epoch().count();
  s->hold_wall_ms = 0;
  s->max_hold_ms = max_hold.count();
  s->speed = speed;
  s->seq = 0;
  s->magic.store(kMagic, std::memory_order_release);
  return std::unique_ptr<SharedClock>(new SharedClock(s));
}

Result<std::unique_ptr<SharedClock>> SharedClock::Open(const std::string& path) {
  auto p = Map(path, false);
  if (!p.ok()) return p.status();
  auto* s = static_cast<Shared*>(*p);
  if (s->magic.load(std::memory_order_acquire) != kMagic) {
    ::munmap(*p, 4096);
    return Status::InvalidArgument("clock file " + path + ": not a sitepower drill clock");
  }
  auto clock = std::unique_ptr<SharedClock>(new SharedClock(s));
  if (s->Read().hold_wall != 0) {  // its holder died mid-plan
    clock->holds_ = 1;
    clock->Release();
  }
  return clock;
}

SharedClock::~SharedClock() {
  while (holds_ > 0) Release();
  ::munmap(shared_, 4096);
}

TimePoint SharedClock::Now() const { return TimePoint(Millis(shared_->Read().At(WallMs()))); }

double SharedClock::Speed() const { return shared_->Read().speed; }

void SharedClock::Hold() const {
  if (holds_++ > 0) return;
  const int64_t wall = WallMs();
  shared_->Write([this, wall]() { shared_->hold_wall_ms.store(wall, std::memory_order_relaxed); });
}

void SharedClock::Release() const {
  if (holds_ == 0 || --holds_ > 0) return;
  const int64_t wall = WallMs();
  const int64_t now = shared_->Read().At(wall);
  shared_->Write([this, wall, now]() {
    shared_->scenario_anchor_ms.store(now, std::memory_order_relaxed);
    shared_->wall_anchor_ms.store(wall, std::memory_order_relaxed);
    shared_->hold_wall_ms.store(0, std::memory_order_relaxed);
  });
}

}  // namespace sitepower::core
