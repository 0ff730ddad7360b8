#include "optim/schedule.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace strata::optim {
namespace {

// The schedule over a run of `total` steps that starts at local step 0.
double shape_at(const ScheduleConfig& s, int64_t warmup, double peak, int64_t step, int64_t total) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double min_lr = s.min_lr_ratio * peak;
  if (s.name == "constant") return peak;
  if (s.name == "cosine") {
    const int64_t span = std::max<int64_t>(1, total - warmup - 1);
    const double progress = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
    return min_lr + 0.5 * (peak - min_lr) * (1.0 + std::cos(M_PI * progress));
  }
  if (s.name == "wsd") {
    const auto decay_steps = static_cast<int64_t>(std::llround(s.decay_fraction * static_cast<double>(total)));
    const int64_t decay_start = std::max(warmup, total - decay_steps);
    if (step < decay_start || decay_steps == 0) return peak;
    const int64_t span = std::max<int64_t>(1, total - 1 - decay_start);
    const double progress = std::clamp(static_cast<double>(step - decay_start) / span, 0.0, 1.0);
    double frac;  // fraction of the way from peak to min_lr
    if (s.decay_shape == "linear") frac = progress;
    else if (s.decay_shape == "1-sqrt") frac = std::sqrt(progress);
    else fail("schedule.decay_shape = '{}' is not one of: linear, 1-sqrt", s.decay_shape);
    return peak - (peak - min_lr) * frac;
  }
  fail("schedule.name = '{}' is not one of: cosine, wsd, constant", s.name);
}

}  // namespace

double lr_at(const ScheduleConfig& s, double peak, int64_t step, int64_t total) {
  if (s.rewarm_from >= 0 && step >= s.rewarm_from)
    return shape_at(s, s.rewarm_steps, peak, step - s.rewarm_from, total - s.rewarm_from);
  return shape_at(s, s.warmup_steps, peak, step, total);
}

}  // namespace strata::optim
