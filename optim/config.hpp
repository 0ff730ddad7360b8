// Optimizer and learning-rate schedule settings.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::optim {

struct OptimConfig {
  std::string name = "adamw";
  double lr = 1e-3;
  std::vector<double> betas = {0.9, 0.95};
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // global grad-norm clip; 0 disables
};

struct ScheduleConfig {
  std::string name = "cosine";  // cosine | constant
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.1;    // final lr = min_lr_ratio * optim.lr
};

}  // namespace strata::optim
