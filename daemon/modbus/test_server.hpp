// Test-only: a libmodbus TCP server (the independent peer) on 127.0.0.1:<free
// port>, serving many clients and unit ids from one register image from its
// own thread. Units listed in `mute` never get an answer (a dead slave behind
// a gateway); DropClients() closes every connection from the server side.
#pragma once

#include <modbus/modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace sitepower::modbus::testing {

class TestServer {
 public:
  // Holding registers [reg_start, reg_start + reg_count), `input_bits`
  // discrete inputs from 0; `init` fills them (every register starts at its
  // own address & 0xFFFF). Anything else is answered as libmodbus does:
  // exception 02 for an address outside these, 01 for a function it lacks.
  TestServer(int reg_start, int reg_count, const std::function<void(modbus_mapping_t*)>& init,
             std::set<int> mute = {}, int input_bits = 8)
      : mute_(std::move(mute)) {
    ctx_ = modbus_new_tcp("127.0.0.1", 0);
    map_ = modbus_mapping_new_start_address(0, 0, 0, input_bits, reg_start, reg_count, 0, 0);
    for (int i = 0; i < reg_count; ++i)
      map_->tab_registers[i] = static_cast<uint16_t>((reg_start + i) & 0xFFFF);
    if (init) init(map_);
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(listen_fd_, 16);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    for (int fd : clients_) close(fd);
    close(listen_fd_);
    modbus_mapping_free(map_);
    modbus_free(ctx_);
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  uint16_t port() const { return static_cast<uint16_t>(port_); }
  int accepted() const { return accepted_; }
  int max_clients() const { return max_clients_; }
  int requests() const { return requests_; }
  // Returns once the server thread has closed them.
  void DropClients() {
    drop_ = true;
    while (drop_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

 private:
  void Serve() {
    uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!stop_) {
      if (drop_.exchange(false)) {
        for (int fd : clients_) close(fd);
        clients_.clear();
      }
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (int fd : clients_) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = accept(listen_fd_, nullptr, nullptr);
        if (fd >= 0) {
          clients_.push_back(fd);
          ++accepted_;
          max_clients_ = std::max<int>(max_clients_, static_cast<int>(clients_.size()));
        }
      }
      std::vector<int> gone;
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        modbus_set_socket(ctx_, fds[i].fd);
        int n = modbus_receive(ctx_, q);
        if (n < 0) {
          gone.push_back(fds[i].fd);
          continue;
        }
        if (n == 0) continue;
        ++requests_;
        if (mute_.count(q[6])) continue;  // MBAP unit id
        modbus_reply(ctx_, q, n, map_);
      }
      for (int fd : gone) {
        close(fd);
        clients_.erase(std::remove(clients_.begin(), clients_.end(), fd), clients_.end());
      }
    }
  }
  modbus_t* ctx_ = nullptr;
  modbus_mapping_t* map_ = nullptr;
  std::set<int> mute_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<int> clients_;
  std::atomic<int> accepted_{0}, max_clients_{0}, requests_{0};
  std::atomic<bool> stop_{false}, drop_{false};
  std::thread thread_;
};

}  // namespace sitepower::modbus::testing
