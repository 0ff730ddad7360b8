// The trainer's sparsity hook (spec §3): owns the masks of the prunable set and the schedule state.
// The trainer calls, per step:
//   on_step_begin(step, opt)  pruning events (masks, weights, optimizer moments) or the start of the
//                             dense phase (returns true: rebuild the optimizer fresh); accounting
//   after_backward(opt)       gradients *= mask (before clipping and the optimizer step), both the
//                             parameters' and what the optimizer steps (ZeRO-1: this rank's pieces)
//   after_step(opt)           weights *= mask and every per-parameter optimizer state *= mask
// Masks are identical on every data-parallel rank: static masks come from (seed, parameter name);
// magnitude masks from weights that are replicated bitwise, with thresholds computed over
// `shard_group` (the ranks that hold shards of the same matrices; tp) by select_smallest. A
// prunable tensor whose ShardLayout has dim = -1 is whole on this rank (replicated over tp): its
// threshold is computed locally, which gives every holder the same mask. Under tensor parallelism
// the masks are the tp = 1 masks sliced (static: the full mask drawn then sliced; magnitude: the
// distributed k-th value with ties by full-matrix index). Whenever a shard's mask changes (static
// masks at construction, pruning events: points every tp rank passes together) it is also gathered
// into a full CPU matrix over the shard group, so state() holds tp = 1 masks without communication
// (checkpoints are layout-independent, and any subset of ranks may call it).
// Under pipeline parallelism a stage holds some of the model's prunable matrices: Accounting::matrices
// lists all of them (pp = 1 names and full sizes), so the zero counts, sparsity, N_avg, effective
// FLOPs and the gradual plan are the whole model's (every matrix follows the same schedule, so the
// other stages' zero counts are known without communication); masks exist for the held matrices only.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "optim/optimizer.hpp"
#include "parallel/process_group.hpp"
#include "sparsity/config.hpp"
#include "sparsity/prunable.hpp"
#include "sparsity/schedule.hpp"

namespace strata::sparsity {

// Model-wide numbers for the logs: every parameter (the prunable ones at full size), the dense
// training FLOPs per token, and global tokens per step.
struct Accounting {
  int64_t total_params = 0;
  double flops_per_token = 0;
  double tokens_per_step = 0;
  // Every prunable matrix of the whole model (name, full numel) in prunable_set order; the
  // Sparsifier's own prunable set must be a subsequence of it (a pipeline stage's). Empty: the
  // prunable set is the whole model's.
  std::vector<std::pair<std::string, int64_t>> matrices;
};

class Sparsifier {
 public:
  Sparsifier(SparsityConfig cfg, std::vector<Prunable> prunable, int64_t total_steps, Accounting acc,
             std::shared_ptr<parallel::ProcessGroup> shard_group);

  bool on_step_begin(int64_t step, optim::Optimizer& opt);
  void after_backward(optim::Optimizer& opt);
  void after_step(optim::Optimizer& opt);

  // Log values for the current step: sparsity (zeros / prunable entries), nonzero_params,
  // n_avg (mean nonzero_params over the steps so far), eff_flops_per_token (dense FLOPs minus
  // 6 per pruned weight), eff_flops (cumulative effective training FLOPs).
  std::vector<std::pair<std::string, double>> metrics() const;
  // Checkpoint entries ("sparsity.*"): masks (full tp = 1 matrices) of the held matrices while
  // masking, per-matrix zero counts of the whole model, accumulators. Not collective. load_state
  // slices full masks and reads only the held matrices' masks.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& tensors, const std::string& where);

  const std::vector<Prunable>& prunable() const { return prunable_; }  // held by this rank
  // The whole model's prunable matrices (Accounting::matrices, or the held ones): names, full numels.
  const std::vector<std::pair<std::string, int64_t>>& matrices() const { return matrices_; }
  std::string prunable_list() const;  // comma-separated names of matrices(), for run metadata
  bool holds(const std::string& matrix) const;  // `matrix` (e.g. "blocks.0.attn.wq.weight") is in prunable()
  bool masking() const { return masking_; }
  const std::vector<at::Tensor>& masks() const { return keep_; }
  int64_t zeros() const;              // pruned entries over all (full) prunable matrices of the model
  int64_t prunable_entries() const { return prunable_entries_; }
  const GradualPlan& plan() const { return plan_; }

 private:
  void prune_to(double sparsity, optim::Optimizer& opt);
  // Masks what `opt` steps (ZeRO-1 pieces or the parameters) and its per-parameter state.
  void mask_optimizer(optim::Optimizer& opt, bool values, bool grads, bool state);
  parallel::ProcessGroup& group_of(size_t i) const;
  void gather_full(size_t i);  // full_keep_[i] from every shard (collective over the shard group)

  SparsityConfig cfg_;
  std::vector<Prunable> prunable_;
  std::vector<std::pair<std::string, int64_t>> matrices_;  // the whole model's
  std::vector<int64_t> zeros_;         // per matrix of matrices_
  std::vector<int64_t> held_of_;       // per matrix of matrices_: its index in prunable_, or -1
  std::vector<at::Tensor> keep_;  // bool, like each weight; empty until the first pruning
  std::vector<at::Tensor> full_keep_;  // tp shards only: the full matrix's mask (CPU bool), for state()
  int64_t prunable_entries_ = 0;
  int64_t total_steps_;
  Accounting acc_;
  std::shared_ptr<parallel::ProcessGroup> shard_group_, local_group_;
  GradualPlan plan_;
  bool masking_ = false, dense_phase_ = false;
  double current_sparsity_ = 0;
  // Accumulated over the steps begun so far (checkpointed): steps, sum of nonzero params, FLOPs.
  double steps_ = 0, nonzero_sum_ = 0, eff_flops_ = 0;
};

// The prunable set of `model` (whole matrices), validated against the config; the static masks are
// drawn here. Callers with tp shards build the Sparsifier from prunable_set() with layouts set.
std::unique_ptr<Sparsifier> make_sparsifier(const SparsityConfig& cfg, torch::nn::Module& model, int64_t run_seed,
                                            int64_t total_steps, Accounting acc,
                                            std::shared_ptr<parallel::ProcessGroup> shard_group);

}  // namespace strata::sparsity
