#include "dispatch/exact.hpp"

#include <algorithm>
#include <functional>

namespace sitepower::dispatch {

Objective ExactOptimum(const PlanInput& in) {
  const size_t n = in.sites.size(), m = in.crews.size();
  Objective best;
  bool have = false;
  std::vector<size_t> choice(n, 0);  // 0 = unserved, k = crew k-1
  std::function<void(size_t)> assign = [&](size_t i) {
    if (i == n) {
      std::vector<std::vector<core::SiteId>> routes(m);
      for (size_t s = 0; s < n; ++s)
        if (choice[s]) routes[choice[s] - 1].push_back(in.sites[s].id);
      for (size_t c = 0; c < m; ++c)
        if (static_cast<int>(routes[c].size()) > in.crews[c].generators_left) return;
      for (auto& r : routes) std::sort(r.begin(), r.end());
      std::function<void(size_t)> permute = [&](size_t c) {
        if (c == m) {
          Objective o = EvaluateRoutes(in, routes);
          if (!have || o.BetterThan(best)) {
            best = o;
            have = true;
          }
          return;
        }
        do {
          permute(c + 1);
        } while (std::next_permutation(routes[c].begin(), routes[c].end()));
      };
      permute(0);
      return;
    }
    for (size_t k = 0; k <= m; ++k) {
      choice[i] = k;
      assign(i + 1);
    }
  };
  assign(0);
  return best;
}

}  // namespace sitepower::dispatch
