// Learning-rate schedules as pure functions of the step.
#pragma once
#include <cstdint>

#include "optim/config.hpp"

namespace strata::optim {

// lr at `step` (0-indexed) of a run of `total_steps`. Every schedule starts with a linear warmup
// from peak/warmup to peak over warmup_steps, then:
//   cosine:   cosine decay to min_lr_ratio * peak, reached at the last step;
//   wsd:      constant peak, then over the last round(decay_fraction * total) steps a decay to
//             min_lr_ratio * peak (reached at the last step), linear or 1-sqrt in the progress;
//   constant: peak.
// With rewarm_from >= 0, steps from rewarm_from on follow the same schedule restarted there: a
// warmup of rewarm_steps to `peak`, then the shape above over the remaining steps.
double lr_at(const ScheduleConfig& s, double peak_lr, int64_t step, int64_t total_steps);

}  // namespace strata::optim
