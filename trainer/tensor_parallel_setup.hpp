// Tensor parallelism in the trainer: parallel.tp > 1 shards the model over the mesh's tp
// group after it was built and initialised with tp = 1 shapes from the run's seed on every rank, so
// each tp rank holds exact slices of the tp = 1 weights (parallel/parallelize.hpp). Data parallelism
// stays over the mesh's dp group: all tp ranks of one dp rank read the same micro-batches.
//
// The training loop asks this object for the loss (vocab-parallel cross-entropy: the model's output
// is this rank's logit shard), the gradient sync after backward (KV heads shared by several ranks;
// sequence-parallel partial gradients) and the clipped global grad norm (every element counted
// once). Checkpoints stay layout-independent: disk checkpoints are written per rank under the tp = 1
// names, each rank its slice placed by layout() (trainer/checkpoint_slices.hpp); in-memory snapshots
// use full_params / full_optim_state, which gather the shards into the tensors a tp = 1 run would
// save (collective over tp), and local_param / local_optim slice them on load, so a run saved under
// one tp resumes under another. With parallel.pp > 1 the sharded model
// is then cut into pipeline stages (trainer/pipeline_train.hpp), each stage tensor-parallel over its
// own tp group.
#pragma once
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/language_model.hpp"
#include "optim/gnb_sampler.hpp"
#include "optim/zero1.hpp"
#include "parallel/data_parallel.hpp"
#include "parallel/mesh.hpp"
#include "parallel/parallelize.hpp"
#include "reweighting/per_sequence.hpp"
#include "trainer/run_config.hpp"

namespace strata::trainer {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

class TensorParallelSetup {
 public:
  // Null when the mesh's tp is 1. Refuses (with the recipe keys to change) what is not wired with
  // tp > 1. `params` are the model's named parameters (the same tensors parallelize() reshapes).
  static std::unique_ptr<TensorParallelSetup> create(models::LanguageModel& model, const NamedTensors& params,
                                                     const parallel::DeviceMesh& mesh, const RunConfig& cfg,
                                                     at::Device device);

  // Mean cross-entropy over the non-ignored targets from this rank's logit shard [.., V'/t].
  // twice_differentiable: the composite form whose backward is differentiable (Sophia-H's refresh).
  at::Tensor loss(const at::Tensor& local_logits, const at::Tensor& targets, bool twice_differentiable = false) const;
  // Per-sequence mean cross-entropy and token counts from this rank's logit shard (full values on
  // every tp rank after the vocab-parallel reductions), for loss reweighting.
  reweighting::SequenceLosses sequence_losses(const at::Tensor& local_logits, const at::Tensor& targets) const;
  // ZeRO-1 over the mesh's dp group: each tp rank's dp group shards the optimizer state of that tp
  // rank's parameter shards; from here on sync_grads and clip_grad_norm act on the optimizer's pieces
  // (the reduced gradient lives in the reducer's shards, not in p.grad()). Collective over tp: checks
  // that every tp rank holds the same piece layout.
  void use_zero1(const optim::Zero1& zero, const parallel::DataParallel& dp);
  // After backward and the data-parallel reduction.
  void sync_grads() const;
  // `params`: what the trainer clips (ZeRO-1: the optimizer's pieces). The norm is the whole model's.
  double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) const;

  // Collective over the tp group (every tp rank calls them): full tp = 1 tensors.
  NamedTensors full_params(const NamedTensors& params) const;
  std::map<std::string, at::Tensor> full_optim_state(const std::map<std::string, at::Tensor>& state) const;
  // This rank's part of a full tensor read from a checkpoint (unchanged for replicated ones).
  at::Tensor local_param(const std::string& name, const at::Tensor& full) const;
  at::Tensor local_optim(const std::string& key, const at::Tensor& full) const;

  const parallel::TensorParallelPlan& plan() const { return plan_; }
  // Sophia-G's refresh: how this rank's logits split the vocabulary (labels sampled across the shards).
  optim::VocabSplit vocab_split() const { return {plan_.vocab, plan_.ctx->group.get()}; }
  // How `numel` elements of parameter p count in whole-model optimizer statistics summed over tp:
  // weight 1/(ranks holding them), vocabulary padding rows excluded (a ZeRO-1 piece, numel <
  // p.numel(), is assumed to hold its share of padding).
  optim::MetricShare metric_share(const at::Tensor& p, int64_t numel) const {
    const double w = plan_.weight_of(p);
    double real = 1.0;
    if (const auto* l = plan_.layout_of(p); l && l->local > 0) {
      const int64_t q = plan_.ctx->group->rank();
      real = double(std::max<int64_t>(0, std::min(l->local, l->full - l->starts.at(q)))) / double(l->local);
    }
    return {w, w * real * static_cast<double>(numel)};
  }
  // How parameter `name` (the tp = 1 name) is split over the tp group; null when every tp rank holds
  // it whole. Per-rank checkpoints (trainer/checkpoint_slices.hpp) place this rank's slice with it.
  const parallel::ShardLayout* layout(const std::string& name) const {
    auto it = layout_by_name_.find(name);
    return it == layout_by_name_.end() ? nullptr : it->second;
  }
  int64_t tp_rank() const { return plan_.ctx->group->rank(); }

 private:
  // The layout of the parameter that optimizer-state key `key` belongs to ("adamw.m.<name>"), if any.
  const parallel::ShardLayout* layout_of_key(const std::string& key) const;

  parallel::TensorParallelPlan plan_;
  std::map<std::string, const parallel::ShardLayout*> layout_by_name_;  // sharded parameters only
  // ZeRO-1 (use_zero1): the optimizer's pieces, the parameter of each, the dp group they split over.
  std::vector<at::Tensor> zero_pieces_, zero_owners_;
  parallel::ProcessGroup* zero_dp_ = nullptr;
};

}  // namespace strata::trainer
