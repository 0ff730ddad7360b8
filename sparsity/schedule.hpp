// Gradual pruning schedule and compute accounting (spec §2.2, §4.2, §4.4, §4.5).
// The cubic (Zhu & Gupta) is defined over the fraction of density-weighted training compute: a step
// at prunable density rho costs (1 - share) + share * rho dense-step units, where share is the
// prunable matmuls' part of a dense step's FLOPs (1 = count the prunable layers only, as the spec's
// model-card check does). Because the total compute depends on the schedule itself, plan_gradual
// solves for it (bisection on a fixed point) and converts the window to steps.
#pragma once
#include <cstdint>
#include <vector>

namespace strata::sparsity {

// s(x) = s_f + (0 - s_f) * (1 - x)^3 for progress x in [0, 1] through the window; 0 before, s_f after.
double cubic_sparsity(double x, double s_final);
// Fraction of the total compute done before step `step`: sum_{i < step} c_i / sum_i c_i.
double compute_fraction(const std::vector<double>& step_costs, int64_t step);
// Mean of the per-step non-zero parameter counts (N_avg).
double n_avg(const std::vector<double>& nonzeros);

struct GradualPlan {
  std::vector<double> sparsity;  // per step: the target sparsity in force during step i
  std::vector<double> cost;      // per step: its compute in dense-step units
  int64_t start_step = 0;        // first step whose compute fraction reaches the window start
  int64_t end_step = 0;          // first step whose compute fraction reaches the window end (s = s_f)
  double total_cost = 0;
};

// Pruning events happen at start_step, every `every` steps after it, and at end_step; between events
// the sparsity holds (pruned entries stay pruned).
GradualPlan plan_gradual(int64_t steps, double s_final, double start_fraction, double end_fraction, int64_t every,
                         double prunable_share = 1.0);

}  // namespace strata::sparsity
