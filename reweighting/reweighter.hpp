// Per-micro-step loss reweighting over the data-parallel group (specs/reweighting.md §2-3).
// Each rank passes its b per-sequence losses; one all-gather of the detached losses gives every rank
// the same n = W*b vector, from which the same weights follow; rank k's loss is
//   L_k = W * sum_{i on k} w_i l_i                                  (token_weighted = false), or
//   L_k = W * b * sum_{i on k} w_i (n_i / sum_{j on k} n_j) l_i     (token_weighted = true),
// so that averaging the ranks' gradients (data parallelism) gives sum_i w_i grad l_i. Weights are
// normalised per micro-step; the caller divides by grad_accum as for the plain loss. The reweighter
// keeps no state: the weights are a function of the step and the micro-step's losses, so resuming
// from a checkpoint reproduces them exactly.
#pragma once
#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>

#include "parallel/process_group.hpp"
#include "reweighting/config.hpp"
#include "reweighting/per_sequence.hpp"
#include "reweighting/strategy.hpp"
#include "reweighting/weights.hpp"

namespace strata::reweighting {

struct ReweightedLoss {
  at::Tensor loss;       // scalar to backpropagate (this rank's L_k, or the plain mean during burn-in)
  at::Tensor mean_loss;  // detached plain mean cross-entropy of this rank's micro-batch (for logs)
  bool weighted = false; // false during the burn-in
  WeightStats stats;     // meaningful when weighted
  at::Tensor weights;    // [W*b] float64 gathered-group weights when weighted (rank k's are [k*b, (k+1)*b))
};

class Reweighter {
 public:
  // dp: the data-parallel group (parallel::make_single_rank_group for one process).
  Reweighter(ReweightConfig cfg, std::shared_ptr<parallel::ProcessGroup> dp);
  const ReweightConfig& config() const { return cfg_; }
  const Strategy& strategy() const { return *strategy_; }
  bool active(int64_t step) const { return step >= cfg_.burn_in_steps; }
  // The temperature at optimizer step `step` (0-based): r_start falling log-linearly to r over
  // r_warmup_steps after the burn-in when r_start > 0, else r.
  double r_at(int64_t step) const;
  // Collective over the dp group once the burn-in is over: every rank calls it with the same
  // step and the same number of sequences.
  ReweightedLoss loss(const SequenceLosses& s, int64_t step) const;
  ReweightedLoss loss(const at::Tensor& logits, const at::Tensor& targets, int64_t step,
                      int64_t ignore_index = -100) const;

 private:
  ReweightConfig cfg_;
  std::shared_ptr<parallel::ProcessGroup> dp_;
  std::unique_ptr<Strategy> strategy_;
};

}  // namespace strata::reweighting
