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
  double grad_clip = 1.0;  // global grad-norm clip; 0 disables (also clips Sophia's sampled-label gradient)
  // Which parameters get weight decay: matrices = every tensor with dim >= 2 (nanoGPT/GPT-3);
  // linear_only = only Linear-layer weights, not embeddings or a tied head (the Sophia repo's rule).
  std::string decay_rule = "matrices";
  bool fused = true;  // AdamW: ATen's fused kernel (CPU and CUDA); false = the exact op-by-op loop (optim/adamw.hpp)
  // Sophia (specs/sophia.md, the authors' code form; betas default to [0.965, 0.99] in its recipes).
  double rho = 0.04;                      // clip threshold scale: ratio = |m| / (rho * bs * hc + 1e-15)
  int64_t hessian_interval = 10;          // k: refresh hc after step s when s % k == k - 1 (0-indexed)
  std::string hessian_estimator = "gnb";  // gnb (Sophia-G) | hutchinson (Sophia-H)
  std::string hutchinson_probe = "rademacher";  // rademacher | gaussian
};

struct ScheduleConfig {
  std::string name = "cosine";  // cosine | wsd | constant
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.1;    // final lr = min_lr_ratio * optim.lr
  // wsd (warmup-stable-decay): constant peak, then decay to min over the last decay_fraction of steps.
  double decay_fraction = 0.2;
  std::string decay_shape = "linear";  // linear | 1-sqrt
  // Re-warming for continual pretraining: resuming with rewarm_steps > 0 and a different optim.lr
  // restarts the warmup (rewarm_steps long) to the new peak at the resumed step, then the schedule
  // runs over the remaining steps. rewarm_from records that step (-1 = none; set on resume).
  int64_t rewarm_steps = 0;
  int64_t rewarm_from = -1;
};

}  // namespace strata::optim
