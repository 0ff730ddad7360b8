// Learning-rate schedules as pure functions of the step.
#pragma once
#include <cstdint>

#include "optim/config.hpp"

namespace strata::optim {

// lr at `step` (0-indexed) of a run of `total_steps`: linear warmup from lr/warmup to lr, then
// cosine decay to min_lr_ratio * lr at the last step (or constant after warmup).
double lr_at(const ScheduleConfig& s, double peak_lr, int64_t step, int64_t total_steps);

}  // namespace strata::optim
