#include "ctl/plan_cmd.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ctl/offline_plan.hpp"

namespace sitepower::ctl {
namespace {

int Usage(int code) {
  std::fprintf(stderr,
               "usage: sitepowerctl plan SCENARIO [--at HH:MM] [--json] [--budget-ms N]\n"
               "                         [--algorithm best|seed|nearest]\n"
               "Plans the scenario offline (every event known) and prints the plan:\n"
               "FORMAT.md plan JSON with --json, else a table.\n");
  return code;
}

}  // namespace

int RunPlanCommand(int argc, char** argv) {
  std::string path, at_text;
  bool json = false;
  dispatch::Options opts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json")
      json = true;
    else if (a == "--at" && i + 1 < argc)
      at_text = argv[++i];
    else if (a == "--budget-ms" && i + 1 < argc)
      opts.budget_ms = std::atoi(argv[++i]);
    else if (a == "--algorithm" && i + 1 < argc) {
      std::string alg = argv[++i];
      if (alg == "seed")
        opts.algorithm = dispatch::Algorithm::kSeedRule;
      else if (alg == "nearest")
        opts.algorithm = dispatch::Algorithm::kNearestFirst;
      else if (alg != "best")
        return Usage(2);
    } else if (a == "--help" || a == "-h")
      return Usage(0);
    else if (!a.empty() && a[0] != '-' && path.empty())
      path = a;
    else {
      std::fprintf(stderr, "sitepowerctl plan: unknown argument '%s'\n", a.c_str());
      return Usage(2);
    }
  }
  if (path.empty()) return Usage(2);
  auto s = scenario::LoadScenarioFile(path);
  if (!s.ok()) {
    std::fprintf(stderr, "sitepowerctl plan: invalid scenario:\n%s\n",
                 s.status().message().c_str());
    return 2;
  }
  core::TimePoint at = s->start.at;
  bool found = false;
  for (const auto& e : s->events)
    if (std::holds_alternative<scenario::MainsFail>(e.body)) {
      at = e.at;
      found = true;
      break;
    }
  if (!at_text.empty()) {
    auto t = core::ParseHhMmOn(at_text, s->start);
    if (!t.ok()) {
      std::fprintf(stderr, "sitepowerctl plan: --at: %s\n", t.status().message().c_str());
      return 2;
    }
    at = *t;
  } else if (!found) {
    std::fprintf(stderr, "sitepowerctl plan: %s has no mains_fail event; nothing to plan\n",
                 path.c_str());
  }
  auto runtimes = PredictScenarioRuntimes(*s);
  dispatch::PlanInput input = OfflinePlanInput(*s, at, runtimes);
  dispatch::Plan plan = dispatch::MakePlan(input, opts);
  scenario::Plan out = ToScenarioPlan(*s, at, plan);
  if (json) {
    std::printf("%s\n", scenario::PlanToJson(out, s->offset_min()).c_str());
    return 0;
  }
  const int off = s->offset_min();
  std::printf("Plan for %s at %s (%zu sites to serve, %zu crews)\n", s->name.c_str(),
              core::FormatHhMm(at, off).c_str(), input.sites.size(), input.crews.size());
  std::printf("%-5s %-3s %-8s %-6s %-6s %-6s %8s  %s\n", "crew", "#", "site", "eta", "runs", "dead",
              "margin", "reason");
  for (const auto& r : plan.routes) {
    int k = 0;
    for (const auto& st : r.stops) {
      std::printf("%-5s %-3d %-8s %-6s %-6s %-6s %7.0fm  %s\n", r.crew.c_str(), ++k,
                  st.site.c_str(), core::FormatHhMm(st.eta, off).c_str(),
                  core::FormatHhMm(st.running_at, off).c_str(),
                  core::FormatHhMm(st.deadline, off).c_str(), st.margin_min, st.reason.c_str());
    }
  }
  for (const auto& u : plan.unserved) std::printf("unserved: %s\n", u.c_str());
  std::printf("predicted: %d VIP down, weighted_down_min %.1f, travel %.0f min\n",
              plan.objective.vip_down, plan.objective.weighted_down_min, plan.objective.travel_min);
  return 0;
}

}  // namespace sitepower::ctl
