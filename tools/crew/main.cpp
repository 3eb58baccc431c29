// sitepower-crew: the technician's terminal client, and the reference for the
// mobile app. Updates are queued in --queue FILE while the daemon cannot be
// reached and sent, in order and with the same idempotency keys, next time.
//
//   sitepower-crew --server HOST:PORT --crew ID --token T [--tls-ca FILE] [--json]
//                  [--queue FILE] COMMAND
//   COMMAND: list | watch | accept TASK | enroute TASK | arrived TASK | running TASK
//            | decline TASK --reason TEXT | location LAT LON | flush
#include <grpcpp/grpcpp.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sitepower/v1/crew.grpc.pb.h"

namespace {

namespace v1 = sitepower::v1;
using json = nlohmann::json;

int Usage(int code) {
  std::fprintf(
      stderr,
      "usage: sitepower-crew --server HOST:PORT --crew ID --token T [--tls-ca FILE] [--json]\n"
      "                      [--queue FILE] COMMAND\n"
      "  list                       my open tasks, in route order\n"
      "  watch                      follow my task events live (resumes after drops)\n"
      "  accept|enroute|arrived|running TASK   move a task along\n"
      "  decline TASK --reason TEXT give a task back\n"
      "  location LAT LON           report where the crew is\n"
      "  flush                      send updates queued while offline\n");
  return code;
}

std::string Hhmm(int64_t ms) {
  if (!ms) return "--:--";
  std::time_t t = ms / 1000;
  std::tm tm{};
  localtime_r(&t, &tm);
  char b[8];
  std::strftime(b, sizeof b, "%H:%M", &tm);
  return b;
}

const char* StatusName(v1::TaskStatus s) {
  switch (s) {
    case v1::TASK_STATUS_ASSIGNED:
      return "assigned";
    case v1::TASK_STATUS_ACCEPTED:
      return "accepted";
    case v1::TASK_STATUS_EN_ROUTE:
      return "en_route";
    case v1::TASK_STATUS_ON_SITE:
      return "on_site";
    case v1::TASK_STATUS_GENERATOR_RUNNING:
      return "generator_running";
    case v1::TASK_STATUS_RELEASED:
      return "released";
    case v1::TASK_STATUS_CANCELLED:
      return "cancelled";
    case v1::TASK_STATUS_DECLINED:
      return "declined";
    default:
      return "?";
  }
}

json TaskJson(const v1::Task& t) {
  return {{"task_id", t.task_id()},
          {"site", t.site_id()},
          {"site_name", t.site_name()},
          {"lat", t.location().lat()},
          {"lon", t.location().lon()},
          {"status", StatusName(t.status())},
          {"order", t.order()},
          {"eta_unix_ms", t.eta_unix_ms()},
          {"deadline_unix_ms", t.deadline_unix_ms()},
          {"reason", t.reason()}};
}

void PrintTask(const v1::Task& t) {
  std::printf("%2d. %-9s %-8s %s\n    at %.4f, %.4f  ETA %s  deadline %s  %s\n    why: %s\n",
              t.order(), t.task_id().c_str(), t.site_id().c_str(), t.site_name().c_str(),
              t.location().lat(), t.location().lon(), Hhmm(t.eta_unix_ms()).c_str(),
              Hhmm(t.deadline_unix_ms()).c_str(), StatusName(t.status()), t.reason().c_str());
}

struct Client {
  std::unique_ptr<v1::CrewService::Stub> stub;
  std::string crew, token;
  void Auth(grpc::ClientContext& ctx, int deadline_s) const {
    ctx.AddMetadata("authorization", "Bearer " + token);
    if (deadline_s > 0)
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(deadline_s));
  }
};

// The offline queue: one JSON update per line.
std::vector<json> LoadQueue(const std::string& path) {
  std::vector<json> q;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) q.push_back(json::parse(line, nullptr, false));
  return q;
}

void SaveQueue(const std::string& path, const std::vector<json>& q) {
  std::ofstream out(path + ".tmp");
  for (const auto& j : q) out << j.dump() << "\n";
  out.close();
  std::rename((path + ".tmp").c_str(), path.c_str());
}

// Sends queued updates in order; stops (keeping the rest) when the daemon is unreachable.
int Flush(const Client& c, const std::string& queue_path, bool as_json) {
  auto q = LoadQueue(queue_path);
  size_t sent = 0;
  for (; sent < q.size(); ++sent) {
    const json& u = q[sent];
    v1::UpdateTaskRequest req;
    req.set_crew_id(c.crew);
    req.set_task_id(u.value("task_id", ""));
    v1::TaskStatus st = v1::TASK_STATUS_UNSPECIFIED;
    v1::TaskStatus_Parse(u.value("status", ""), &st);
    req.set_status(st);
    req.set_reason(u.value("reason", ""));
    req.set_idempotency_key(u.value("key", ""));
    grpc::ClientContext ctx;
    c.Auth(ctx, 5);
    v1::UpdateTaskResponse resp;
    grpc::Status s = c.stub->UpdateTask(&ctx, req, &resp);
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      break;
    if (as_json) {
      std::printf(
          "%s\n",
          (s.ok() ? json{{"ok", true},
                         {"duplicate", resp.duplicate()},
                         {"task", TaskJson(resp.task())}}
                  : json{{"ok", false}, {"code", s.error_code()}, {"error", s.error_message()}})
              .dump()
              .c_str());
    } else if (s.ok()) {
      std::printf("%s %s: %s%s\n", req.task_id().c_str(), resp.task().site_id().c_str(),
                  StatusName(resp.task().status()), resp.duplicate() ? " (already recorded)" : "");
    } else {
      std::fprintf(stderr, "%s: refused: %s\n", req.task_id().c_str(), s.error_message().c_str());
    }
  }
  q.erase(q.begin(), q.begin() + static_cast<long>(sent));
  SaveQueue(queue_path, q);
  if (!q.empty())
    std::fprintf(stderr, "offline: %zu update(s) queued in %s; run 'flush' when back\n", q.size(),
                 queue_path.c_str());
  return q.empty() ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> opt;
  std::vector<std::string> args;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json")
      as_json = true;
    else if (a == "--help" || a == "-h")
      return Usage(0);
    else if (a.rfind("--", 0) == 0 && i + 1 < argc)
      opt[a] = argv[++i];
    else
      args.push_back(a);
  }
  if (!opt.count("--server") || !opt.count("--crew") || !opt.count("--token") || args.empty())
    return Usage(2);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (opt.count("--tls-ca")) {
    std::ifstream in(opt["--tls-ca"]);
    std::stringstream ss;
    ss << in.rdbuf();
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ss.str();
    creds = grpc::SslCredentials(o);
  }
  Client c{v1::CrewService::NewStub(grpc::CreateChannel(opt["--server"], creds)), opt["--crew"],
           opt["--token"]};
  const std::string queue =
      opt.count("--queue") ? opt["--queue"] : "sitepower-crew-" + c.crew + ".queue";
  const std::string& cmd = args[0];

  if (cmd == "list") {
    grpc::ClientContext ctx;
    c.Auth(ctx, 10);
    v1::ListMyTasksRequest req;
    req.set_crew_id(c.crew);
    v1::ListMyTasksResponse resp;
    grpc::Status s = c.stub->ListMyTasks(&ctx, req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "sitepower-crew: %s\n", s.error_message().c_str());
      return 1;
    }
    if (as_json) {
      json out = json::array();
      for (const auto& t : resp.tasks()) out.push_back(TaskJson(t));
      std::printf("%s\n", out.dump().c_str());
    } else {
      if (resp.tasks().empty()) std::printf("No open tasks for crew %s.\n", c.crew.c_str());
      for (const auto& t : resp.tasks()) PrintTask(t);
    }
    return 0;
  }
  if (cmd == "watch") {
    uint64_t last = 0;
    for (;;) {
      grpc::ClientContext ctx;
      c.Auth(ctx, 0);
      v1::SubscribeTasksRequest req;
      req.set_crew_id(c.crew);
      req.set_after_seq(last);
      auto reader = c.stub->SubscribeTasks(&ctx, req);
      v1::TaskEvent e;
      while (reader->Read(&e)) {
        last = e.seq();
        if (as_json) {
          std::printf("%s\n", json{{"seq", e.seq()},
                                   {"kind", v1::TaskEvent::Kind_Name(e.kind())},
                                   {"message", e.message()},
                                   {"task", TaskJson(e.task())}}
                                  .dump()
                                  .c_str());
        } else {
          std::printf("#%llu %s: %s\n", static_cast<unsigned long long>(e.seq()),
                      v1::TaskEvent::Kind_Name(e.kind()).c_str(), e.message().c_str());
          PrintTask(e.task());
        }
        std::fflush(stdout);
      }
      grpc::Status s = reader->Finish();
      if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
          s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
        std::fprintf(stderr, "sitepower-crew: %s\n", s.error_message().c_str());
        return 1;
      }
      std::fprintf(stderr, "stream dropped (%s); resuming after #%llu\n", s.error_message().c_str(),
                   static_cast<unsigned long long>(last));
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
  }
  if (cmd == "location" && args.size() == 3) {
    grpc::ClientContext ctx;
    c.Auth(ctx, 10);
    v1::ReportLocationRequest req;
    req.set_crew_id(c.crew);
    req.mutable_location()->set_lat(std::stod(args[1]));
    req.mutable_location()->set_lon(std::stod(args[2]));
    v1::ReportLocationResponse resp;
    grpc::Status s = c.stub->ReportLocation(&ctx, req, &resp);
    if (!s.ok()) std::fprintf(stderr, "sitepower-crew: %s\n", s.error_message().c_str());
    return s.ok() ? 0 : 1;
  }
  if (cmd == "flush") return Flush(c, queue, as_json);
  static const std::map<std::string, std::string> kStatus = {
      {"accept", "TASK_STATUS_ACCEPTED"},
      {"enroute", "TASK_STATUS_EN_ROUTE"},
      {"arrived", "TASK_STATUS_ON_SITE"},
      {"running", "TASK_STATUS_GENERATOR_RUNNING"},
      {"decline", "TASK_STATUS_DECLINED"}};
  auto st = kStatus.find(cmd);
  if (st == kStatus.end() || args.size() != 2) return Usage(2);
  if (cmd == "decline" && !opt.count("--reason")) {
    std::fprintf(stderr, "sitepower-crew: decline needs --reason\n");
    return 2;
  }
  std::random_device rd;
  auto q = LoadQueue(queue);
  q.push_back({{"task_id", args[1]},
               {"status", st->second},
               {"reason", opt["--reason"]},
               {"key", c.crew + "-" + std::to_string(rd()) + std::to_string(rd())}});
  SaveQueue(queue, q);  // queued first: a crash or a dead link loses nothing
  return Flush(c, queue, as_json);
}
