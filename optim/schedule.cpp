#include "optim/schedule.hpp"

#include <algorithm>
#include <cmath>

namespace strata::optim {

double lr_at(const ScheduleConfig& s, double peak, int64_t step, int64_t total) {
  if (s.warmup_steps > 0 && step < s.warmup_steps) return peak * static_cast<double>(step + 1) / s.warmup_steps;
  if (s.name == "constant") return peak;
  const double min_lr = s.min_lr_ratio * peak;
  const int64_t span = std::max<int64_t>(1, total - s.warmup_steps - 1);
  const double progress = std::clamp(static_cast<double>(step - s.warmup_steps) / span, 0.0, 1.0);
  return min_lr + 0.5 * (peak - min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace strata::optim
