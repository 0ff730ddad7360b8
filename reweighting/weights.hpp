// The weight math of specs/reweighting.md §2.3-2.5 on the gathered vector of n per-sequence losses:
// min-max normalisation to [-delta, delta], the strategy's shape f, and the closed-form KL-regularised
// weights w = softmax(f / r). Computed in float64 on detached inputs: weights never carry a gradient.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "reweighting/strategy.hpp"

namespace strata::reweighting {

struct WeightStats {
  double entropy = 0;     // -sum w log w (nats); log n for uniform weights
  double max_weight = 0;
  double l_min = 0, l_max = 0;
};

// x_i = delta (2 l_i - l_max - l_min) / max(l_max - l_min, 1e-6).
at::Tensor normalize_losses(const at::Tensor& losses, double delta);
// w_i = exp((f_i - max f) / r) / sum_k exp((f_k - max f) / r); subtract_max = false skips the
// stabilising shift (the same weights in exact arithmetic; for tests).
at::Tensor kl_weights(const at::Tensor& f, double r, bool subtract_max = true);

struct Weights {
  at::Tensor w;  // [n] float64, detached, sums to 1
  WeightStats stats;
};
Weights compute_weights(const at::Tensor& losses, const Strategy& strategy, double r, double delta = 1.0);

// Averages WeightStats over the micro-steps of a logging step (the trainer's metrics rows).
class StatsMeter {
 public:
  void add(const WeightStats& s);
  bool empty() const { return n_ == 0; }
  // {"reweight/entropy", ...}, {"reweight/max_weight", ...}, {"reweight/l_min", ...}, {"reweight/l_max", ...},
  // then resets; empty when nothing was added.
  std::vector<std::pair<std::string, double>> take();

 private:
  WeightStats sum_;
  int64_t n_ = 0;
};

}  // namespace strata::reweighting
