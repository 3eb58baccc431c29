#include "sim/controller_sim.hpp"

#include <arpa/inet.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "modbus/map_image.hpp"

namespace sitepower::sim {

namespace {

constexpr int kHoldingStart = 40000;
constexpr int kHoldingCount = 300;

struct Controller {
  modbus_t* ctx = nullptr;
  modbus_mapping_t* map = nullptr;
  const modbus::RegisterMap* rmap = nullptr;      // null: the fixed SunSpec 802 layout
  int mains_fc = MODBUS_FC_READ_DISCRETE_INPUTS;  // where the mains status is read
  int mains_addr = 0;
  bool mains_lost = false;
  bool warned = false;  // a state the map cannot express was reported
  int listen_fd = -1;
  int port = 0;
  Fault fault = Fault::kNone;
  std::vector<int> clients;
  uint64_t di_replies = 0;           // answered mains-status reads showing mains lost
  std::vector<int64_t> di_reply_ns;  // when, steady clock (the first 4096)
};

void PutString(modbus_mapping_t* m, int addr, int words, const char* s) {
  for (int i = 0; i < words; ++i) {
    char a = static_cast<int>(std::strlen(s)) > 2 * i ? s[2 * i] : 0;
    char b = static_cast<int>(std::strlen(s)) > 2 * i + 1 ? s[2 * i + 1] : 0;
    m->tab_registers[addr - kHoldingStart + i] = static_cast<uint16_t>(a << 8 | (b & 0xFF));
  }
}

void H(modbus_mapping_t* m, int addr, uint16_t v) { m->tab_registers[addr - kHoldingStart] = v; }

// The fixed part of the layout: SunSpec chain, model 1, model 802 sentinels and scale factors.
void InitLayout(modbus_mapping_t* m) {
  for (int i = 0; i < kHoldingCount; ++i) m->tab_registers[i] = 0;
  H(m, 40000, 0x5375);
  H(m, 40001, 0x6E53);
  H(m, 40002, 1);
  H(m, 40003, 66);
  PutString(m, 40004, 16, "sitepower");
  PutString(m, 40020, 16, "sim-dc-controller");
  PutString(m, 40044, 8, "1.0");
  PutString(m, 40052, 16, "SIM-0001");
  H(m, 40070, 802);
  H(m, 40071, 62);
  for (int a = 40072; a <= 40133; ++a) H(m, a, 0xFFFF);  // not implemented unless set below
  for (int a = 40122; a <= 40133; ++a) H(m, a, 0x8000);  // scale factors: not implemented
  H(m, 40122, 0);                                        // AHRtg_SF
  H(m, 40126, 0);                                        // SoC_SF
  H(m, 40128, 0);                                        // SoH_SF
  H(m, 40129, static_cast<uint16_t>(-2));                // V_SF
  H(m, 40131, static_cast<uint16_t>(-1));                // A_SF
  H(m, 40133, 0);                                        // W_SF
  H(m, 40096, 0);
  H(m, 40097, 0);
  H(m, 40134, 0xFFFF);
  H(m, 40135, 0);
}

void Apply(modbus_mapping_t* m, const ControllerState& s) {
  H(m, 40072, static_cast<uint16_t>(std::lround(s.capacity_ah)));
  H(m, 40081, static_cast<uint16_t>(std::lround(std::clamp(s.soc_pct, 0.0, 100.0))));
  H(m, 40083, static_cast<uint16_t>(std::lround(std::clamp(s.soh_pct, 0.0, 100.0))));
  H(m, 40086, s.current_a > 0.5 ? 3 : (s.current_a < -0.5 ? 4 : 1));  // ChaSt
  H(m, 40104, static_cast<uint16_t>(std::lround(s.voltage_v * 100)));
  // Wire convention of this controller: + = into the battery.
  H(m, 40114, static_cast<uint16_t>(static_cast<int16_t>(std::lround(-s.current_a * 10))));
  H(m, 40117, static_cast<uint16_t>(static_cast<int16_t>(std::lround(s.voltage_v * s.current_a))));
  H(m, 40200, static_cast<uint16_t>(static_cast<int16_t>(std::lround(s.temp_c * 10))));
  H(m, 40201, static_cast<uint16_t>(std::lround(s.lvd_v * 100)));
  m->tab_input_bits[0] = s.mains_ok;
  m->tab_input_bits[1] = s.generator_running;
  m->tab_input_bits[2] = s.lvd_open;
}

// One function code's span of addresses in a map (what its polls read).
struct Span {
  int start = 0, count = 0;
  void Cover(int a, int n) {
    if (count == 0) {
      start = a;
      count = n;
      return;
    }
    const int end = std::max(start + count, a + n);
    start = std::min(start, a);
    count = end - start;
  }
};

// Writes `state` as a device with map `m` serves it.
void ApplyMap(Controller& c, const ControllerState& s) {
  modbus::CanonicalValues v;
  v.battery_voltage_v = s.voltage_v;
  v.battery_current_a = s.current_a;
  v.battery_temp_c = s.temp_c;
  v.soc_pct = s.soc_pct;
  v.remaining_ah = s.capacity_ah * s.soc_pct / 100.0;
  v.lvd_v = s.lvd_v;
  v.alarms = 0;
  v.mains_ok = s.mains_ok;
  v.generator_running = s.generator_running;
  v.lvd_open = s.lvd_open;
  auto image = modbus::EncodeImage(*c.rmap, v);
  if (!image.ok()) {
    if (!c.warned)
      std::fprintf(stderr, "sim: controller on port %d (map %s): %s; keeps what it showed\n",
                   c.port, c.rmap->name.c_str(), image.status().message().c_str());
    c.warned = true;
    return;
  }
  modbus_mapping_t* m = c.map;
  for (const auto& [fc, words] : image->words)
    for (const auto& [addr, w] : words) {
      switch (fc) {
        case modbus::Function::kReadCoils:
          if (addr >= m->start_bits && addr < m->start_bits + m->nb_bits)
            m->tab_bits[addr - m->start_bits] = w ? 1 : 0;
          break;
        case modbus::Function::kReadDiscreteInputs:
          if (addr >= m->start_input_bits && addr < m->start_input_bits + m->nb_input_bits)
            m->tab_input_bits[addr - m->start_input_bits] = w ? 1 : 0;
          break;
        case modbus::Function::kReadHoldingRegisters:
          if (addr >= m->start_registers && addr < m->start_registers + m->nb_registers)
            m->tab_registers[addr - m->start_registers] = w;
          break;
        case modbus::Function::kReadInputRegisters:
          if (addr >= m->start_input_registers &&
              addr < m->start_input_registers + m->nb_input_registers)
            m->tab_input_registers[addr - m->start_input_registers] = w;
          break;
      }
    }
}

void ApplyState(Controller& c, const ControllerState& s) {
  c.mains_lost = !s.mains_ok;
  if (c.rmap)
    ApplyMap(c, s);
  else
    Apply(c.map, s);
}

}  // namespace

struct ControllerFarm::Impl {
  std::mutex mu;  // guards controllers' mappings and faults
  std::vector<Controller> controllers;
  std::thread thread;
  std::atomic<bool> running{false};
  int wake[2] = {-1, -1};  // self-pipe to stop the select loop

  void Loop();
  void Serve(Controller& c, int fd, std::vector<int>& to_close);
  // Opens c's listening socket and keeps it; returns its index or -1.
  int Listen(Controller& c, std::string* error);
};

ControllerFarm::ControllerFarm() : impl_(std::make_unique<Impl>()) {
  if (pipe(impl_->wake) != 0) impl_->wake[0] = impl_->wake[1] = -1;
}

ControllerFarm::~ControllerFarm() {
  Stop();
  for (auto& c : impl_->controllers) {
    for (int fd : c.clients) close(fd);
    if (c.listen_fd >= 0) close(c.listen_fd);
    modbus_mapping_free(c.map);
    modbus_free(c.ctx);
  }
  for (int fd : impl_->wake)
    if (fd >= 0) close(fd);
}

int ControllerFarm::Add(std::string* error) {
  Controller c;
  c.map = modbus_mapping_new_start_address(0, 0, 0, 3, kHoldingStart, kHoldingCount, 0, 0);
  if (!c.map) {
    if (error) *error = "libmodbus: out of memory";
    return -1;
  }
  InitLayout(c.map);
  return impl_->Listen(c, error);
}

int ControllerFarm::Add(const modbus::RegisterMap& map, std::string* error) {
  Controller c;
  c.rmap = &map;
  // The mapping covers every address the map's polls read (and, for a
  // SunSpec map, the chain at 40000 in the common layout).
  Span bits, inputs, holding, input_regs;
  for (const auto& b : map.blocks) {
    Span* span = b.fc == modbus::Function::kReadCoils              ? &bits
                 : b.fc == modbus::Function::kReadDiscreteInputs   ? &inputs
                 : b.fc == modbus::Function::kReadHoldingRegisters ? &holding
                                                                   : &input_regs;
    span->Cover(b.address, b.count);
  }
  if (map.sunspec_model) holding.Cover(kHoldingStart, kHoldingCount);
  c.map = modbus_mapping_new_start_address(bits.start, bits.count, inputs.start, inputs.count,
                                           holding.start, holding.count, input_regs.start,
                                           input_regs.count);
  if (!c.map) {
    if (error) *error = "libmodbus: out of memory";
    return -1;
  }
  if (map.sunspec_model) {
    // The chain of the fixed layout, in a mapping that may start elsewhere.
    modbus_mapping_t* chain =
        modbus_mapping_new_start_address(0, 0, 0, 3, kHoldingStart, kHoldingCount, 0, 0);
    InitLayout(chain);
    for (int i = 0; i < kHoldingCount; ++i)
      c.map->tab_registers[kHoldingStart + i - holding.start] = chain->tab_registers[i];
    modbus_mapping_free(chain);
  }
  // Where the mains status is read, for Stats(): the mains_ok point, else
  // the first AC voltage of the map's mains rule.
  std::string mains_point = "mains_ok";
  if (map.mains && !map.mains->from.empty()) mains_point = map.mains->from.front();
  c.mains_fc = -1;
  for (const auto& p : map.points)
    if (p.name == mains_point) {
      c.mains_fc = static_cast<int>(p.fc);
      c.mains_addr = p.address;
    }
  return impl_->Listen(c, error);
}

int ControllerFarm::Impl::Listen(Controller& c, std::string* error) {
  c.ctx = modbus_new_tcp("127.0.0.1", 0);
  if (!c.ctx) {
    if (error) *error = "libmodbus: out of memory";
    modbus_mapping_free(c.map);
    return -1;
  }
  c.listen_fd = modbus_tcp_listen(c.ctx, 16);
  if (c.listen_fd < 0) {
    if (error) *error = std::string("listen: ") + modbus_strerror(errno);
    modbus_mapping_free(c.map);
    modbus_free(c.ctx);
    return -1;
  }
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  getsockname(c.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  c.port = ntohs(addr.sin_port);
  ApplyState(c, ControllerState{});
  std::lock_guard<std::mutex> lock(mu);
  controllers.push_back(c);
  return static_cast<int>(controllers.size()) - 1;
}

int ControllerFarm::port(int index) const { return impl_->controllers.at(index).port; }

void ControllerFarm::Set(int index, const ControllerState& state) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  ApplyState(impl_->controllers.at(index), state);
}

void ControllerFarm::SetFault(int index, Fault fault) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->controllers.at(index).fault = fault;
}

ControllerFarm::ReplyStats ControllerFarm::Stats(int index) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const Controller& c = impl_->controllers.at(static_cast<size_t>(index));
  return {c.di_replies, c.di_reply_ns.empty() ? 0 : c.di_reply_ns.back()};
}

int64_t ControllerFarm::DiReplyNs(int index, uint64_t n) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const Controller& c = impl_->controllers.at(static_cast<size_t>(index));
  return n >= 1 && n <= c.di_reply_ns.size() ? c.di_reply_ns[n - 1] : 0;
}

void ControllerFarm::Start() {
  if (impl_->running.exchange(true)) return;
  impl_->thread = std::thread([impl = impl_.get()]() { impl->Loop(); });
}

void ControllerFarm::Stop() {
  if (!impl_->running.exchange(false)) return;
  if (impl_->wake[1] >= 0) {
    char b = 1;
    if (write(impl_->wake[1], &b, 1) < 0) {
    }
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

void ControllerFarm::Impl::Serve(Controller& c, int fd, std::vector<int>& to_close) {
  uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  modbus_set_socket(c.ctx, fd);
  int rc = modbus_receive(c.ctx, query);
  if (rc == 0) return;  // not for us (filtered)
  if (rc < 0) {
    to_close.push_back(fd);
    return;
  }
  std::lock_guard<std::mutex> lock(mu);
  switch (c.fault) {
    case Fault::kNone:
      modbus_reply(c.ctx, query, rc, c.map);
      if (rc >= 12 && c.mains_lost && query[7] == c.mains_fc &&
          c.mains_addr >= (query[8] << 8 | query[9]) &&
          c.mains_addr < (query[8] << 8 | query[9]) + (query[10] << 8 | query[11])) {
        ++c.di_replies;
        if (c.di_reply_ns.size() < 4096)
          c.di_reply_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::steady_clock::now().time_since_epoch())
                                      .count());
      }
      break;
    case Fault::kTimeout:
      break;  // swallow the request: the client must time out
    case Fault::kHalfOpen:
      break;
    case Fault::kException:
      modbus_reply_exception(c.ctx, query, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
      break;
    case Fault::kGarbage: {
      uint8_t junk[16];
      for (size_t i = 0; i < sizeof junk; ++i) junk[i] = static_cast<uint8_t>(0xA5 ^ (i * 37));
      // MSG_NOSIGNAL: a client that already hung up must not SIGPIPE the drill.
      if (send(fd, junk, sizeof junk, MSG_NOSIGNAL) < 0) to_close.push_back(fd);
      break;
    }
  }
}

void ControllerFarm::Impl::Loop() {
  while (running) {
    fd_set rd;
    FD_ZERO(&rd);
    int maxfd = wake[0];
    if (wake[0] >= 0) FD_SET(wake[0], &rd);
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& c : controllers) {
        FD_SET(c.listen_fd, &rd);
        maxfd = std::max(maxfd, c.listen_fd);
        // A half-open peer stops reading its sockets: requests pile up unanswered.
        if (c.fault == Fault::kHalfOpen) continue;
        for (int fd : c.clients) {
          FD_SET(fd, &rd);
          maxfd = std::max(maxfd, fd);
        }
      }
    }
    timeval tv{0, 200000};
    int n = select(maxfd + 1, &rd, nullptr, nullptr, &tv);
    if (n <= 0) continue;
    if (wake[0] >= 0 && FD_ISSET(wake[0], &rd)) break;
    for (auto& c : controllers) {
      if (FD_ISSET(c.listen_fd, &rd)) {
        int fd = accept(c.listen_fd, nullptr, nullptr);
        if (fd >= 0) c.clients.push_back(fd);
      }
      std::vector<int> to_close;
      for (int fd : std::vector<int>(c.clients))
        if (FD_ISSET(fd, &rd)) Serve(c, fd, to_close);
      for (int fd : to_close) {
        close(fd);
        c.clients.erase(std::remove(c.clients.begin(), c.clients.end(), fd), c.clients.end());
      }
    }
  }
}

}  // namespace sitepower::sim
