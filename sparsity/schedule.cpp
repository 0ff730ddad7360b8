#include "sparsity/schedule.hpp"

#include <cmath>
#include <numeric>

#include "core/error.hpp"

namespace strata::sparsity {

double cubic_sparsity(double x, double s_final) {
  if (x <= 0) return 0.0;
  if (x >= 1) return s_final;
  const double r = 1.0 - x;
  return s_final + (0.0 - s_final) * r * r * r;
}

double compute_fraction(const std::vector<double>& costs, int64_t step) {
  if (step < 0 || step > static_cast<int64_t>(costs.size()))
    fail("compute_fraction: step {} is outside [0, {}]", step, costs.size());
  const double total = std::accumulate(costs.begin(), costs.end(), 0.0);
  return std::accumulate(costs.begin(), costs.begin() + step, 0.0) / total;
}

double n_avg(const std::vector<double>& nonzeros) {
  if (nonzeros.empty()) return 0.0;
  return std::accumulate(nonzeros.begin(), nonzeros.end(), 0.0) / static_cast<double>(nonzeros.size());
}

namespace {

// The schedule that results when compute fractions are measured against an assumed total C.
GradualPlan simulate(int64_t steps, double s_f, double c0, double c1, int64_t every, double share, double assumed_total) {
  GradualPlan p;
  p.sparsity.resize(steps), p.cost.resize(steps);
  p.start_step = p.end_step = steps;
  double done = 0, s = 0;
  for (int64_t i = 0; i < steps; ++i) {
    const double frac = done / assumed_total;
    if (frac >= c1 && p.end_step == steps) {
      p.end_step = i;
      if (p.start_step == steps) p.start_step = i;
      s = s_f;
    } else if (frac >= c0 && p.end_step == steps) {
      if (p.start_step == steps) p.start_step = i;
      if ((i - p.start_step) % every == 0) s = cubic_sparsity((frac - c0) / (c1 - c0), s_f);
    }
    p.sparsity[i] = s;
    p.cost[i] = (1.0 - share) + share * (1.0 - s);
    done += p.cost[i];
  }
  p.total_cost = done;
  return p;
}

}  // namespace

GradualPlan plan_gradual(int64_t steps, double s_f, double c0, double c1, int64_t every, double share) {
  if (steps < 1) fail("sparsity: gradual pruning needs train.steps >= 1");
  if (!(s_f >= 0 && s_f <= 1)) fail("sparsity.sparsity = {} is outside [0, 1]", s_f);
  if (!(c0 >= 0 && c0 < c1 && c1 <= 1))
    fail("sparsity.start_fraction = {} and end_fraction = {} must satisfy 0 <= start < end <= 1", c0, c1);
  if (every < 1) fail("sparsity.prune_every = {} must be >= 1", every);
  if (!(share > 0 && share <= 1)) fail("sparsity: prunable share of the compute {} is outside (0, 1]", share);
  // f(C) = total(C) - C is >= 0 at the all-sparse total and <= 0 at the dense total.
  double lo = static_cast<double>(steps) * (1.0 - share * s_f), hi = static_cast<double>(steps);
  for (int it = 0; it < 200 && hi - lo > 1e-9 * hi; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (simulate(steps, s_f, c0, c1, every, share, mid).total_cost >= mid) lo = mid;
    else hi = mid;
  }
  return simulate(steps, s_f, c0, c1, every, share, hi);
}

}  // namespace strata::sparsity
