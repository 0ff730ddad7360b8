// parallelize(): turns a model built with full (tp = 1) shapes into this rank's tensor-parallel
// shard. It walks the modules, and by role only (models::LinearRole, models::Embedding) it slices
// the weights that the model already holds and installs the communication hooks; it knows nothing
// of transformers. Initialise the model from the run's seed first: the tp model then holds exactly
// the shards of the tp = 1 model's weights.
//
//   Column  rows split into t contiguous blocks, whole `unit`s (heads) each. With fewer units than
//           ranks (GQA with tp > n_kv_head) and t % units == 0, each unit is replicated on t/units
//           consecutive ranks (the ranks whose query heads use it); their gradients are summed by
//           sync_grads().
//   Row     input columns split the same way; bias replicated and added once after the reduce.
//   Vocab (Linear) and Embedding: rows padded to V' (vocab_parallel.hpp) and split; logits stay local.
//           An embedding's vocab_aligned tensors (an output bias over the vocabulary) are split with its rows.
//   Replicated, and every parameter not owned by such a layer (norms, positions): untouched.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/nn/module.h>

#include "parallel/process_group.hpp"
#include "parallel/tensor_parallel_layers.hpp"
#include "parallel/vocab_parallel.hpp"

namespace strata::parallel {

struct TensorParallelOptions {
  int64_t vocab_multiple = 128;  // V' is a multiple of vocab_multiple * t (Megatron: 128)
  // Sequence parallelism: activations outside the tp regions are split along dimension 1 ([B, T, d]);
  // column layers all-gather the sequence, row layers reduce-scatter it, the embedding lookup
  // reduce-scatters. Everything the model does outside the regions must then be per-token (norms,
  // dropout, residual adds); sync_grads() sums the partial gradients of the replicated parameters.
  // Learned positions pass through models::Embedding::lookup_add(ids, positions), which adds each rank's
  // chunk of them after the reduce-scatter (their gradients are then partial and summed too).
  bool sequence_parallel = false;
  uint64_t dropout_seed = 0;     // tp rank r draws dropout inside regions from seed + 2718 + r (Megatron)
  c10::DeviceType device = c10::DeviceType::CPU;
};

// How one parameter is laid out over the tp group: rank q holds elements [starts[q], starts[q] + local)
// of dimension `dim` of the full tensor (whose size there is `full`; rows at or beyond `full` are
// vocabulary padding, zero). Ranks may share a range (replicated KV heads).
struct ShardLayout {
  int64_t dim = 0;
  int64_t full = 0;
  int64_t local = 0;
  std::vector<int64_t> starts;

  // Elements of rank q's range that lie inside the full tensor (the rest is vocabulary padding).
  int64_t valid(int64_t q) const { return std::max<int64_t>(0, std::min(local, full - starts.at(q))); }
  // Rank q is the first rank holding its range: per-rank checkpoints write a shared range once.
  bool first_holder(int64_t q) const {
    for (int64_t k = 0; k < q; ++k)
      if (starts[k] == starts.at(q)) return false;
    return true;
  }
};

struct TensorParallelPlan {
  std::shared_ptr<TpContext> ctx;
  bool has_vocab = false;
  VocabShard vocab;  // valid when has_vocab: the model's outputs are local logits over vocab.start..end
  // Parameter -> how many tp ranks hold an identical copy (1 = sharded, t = replicated). Parameters
  // not listed are replicated on all t ranks.
  std::unordered_map<const void*, int64_t> copies;
  // Parameters replicated on a subset of ranks (GQA): unit index and unit count, for sync_grads.
  struct PartialReplica {
    at::Tensor param;
    int64_t unit_rows, unit_index, units;
  };
  std::vector<PartialReplica> partial;
  std::vector<std::string> sharded;  // names of the layers that were sliced, for logs and tests
  std::vector<at::Tensor> replicated;  // parameters every tp rank holds whole (norms, positions, row biases)
  std::unordered_map<const void*, ShardLayout> layouts;  // every sharded parameter

  // The layout of parameter `p`, or null when every tp rank holds it whole.
  const ShardLayout* layout_of(const at::Tensor& p) const;
  // Checkpoints stay layout-independent: full_from_local all-gathers `local` (this rank's part of a
  // tensor laid out as `l`: a parameter or a same-shaped optimizer moment) into the full tp = 1
  // tensor (collective over the tp group); local_from_full takes this rank's part of a full tensor.
  at::Tensor full_from_local(const at::Tensor& local, const ShardLayout& l) const;
  at::Tensor local_from_full(const at::Tensor& full, const ShardLayout& l) const;

  int64_t tp() const { return ctx->group->size(); }
  // Call after backward (before data-parallel reduction and clipping): sums the gradients of units
  // shared by several tp ranks and, with sequence parallelism, of the replicated parameters (each
  // rank saw only its part of the sequence). A no-op without either.
  void sync_grads() const;
  // Global L2 norm of the gradients over the tp group: every parameter element counted once.
  double grad_norm(const std::vector<at::Tensor>& params, ProcessGroup* also = nullptr) const;
  // The same, then summed over `also` as well: pipeline stages (the pp group) hold disjoint parameters.
  double grad_norm(const std::vector<at::Tensor>& params, ProcessGroup& also) const;
  // Scales the gradients so that grad_norm() <= max_norm (no-op if max_norm <= 0); returns the norm.
  double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) const;
  // 1 / (tp ranks holding p's elements): summed over the tp group, every element counts once.
  double weight_of(const at::Tensor& p) const;

  // ZeRO-1 (optim/zero1.hpp) keeps this rank's reduced gradient as flat "pieces": leaves whose grad
  // holds a contiguous range of one parameter's elements (owners[k] is pieces[k]'s parameter), the
  // ranges disjoint over the dp group `dp`. The same operations on them, after the dp reduction:
  // sync_grad_pieces sums the shared-KV and sequence-parallel partial gradients over tp (every tp
  // rank must hold the same element ranges: the local shapes, hence the dp buckets, agree on all tp
  // ranks); the norm counts every element of the model once (summed over dp and tp).
  void sync_grad_pieces(const std::vector<at::Tensor>& pieces, const std::vector<at::Tensor>& owners) const;
  double grad_norm_pieces(const std::vector<at::Tensor>& pieces, const std::vector<at::Tensor>& owners,
                          ProcessGroup& dp) const;
  double clip_grad_norm_pieces(const std::vector<at::Tensor>& pieces, const std::vector<at::Tensor>& owners,
                               ProcessGroup& dp, double max_norm) const;

 private:
  // sqrt of sum_k weights[k] * |grads[k]|^2, summed over the tp group and then over `also` (if any).
  double weighted_norm(const std::vector<at::Tensor>& grads, const std::vector<double>& weights,
                       ProcessGroup* also) const;
};

TensorParallelPlan parallelize(torch::nn::Module& model, std::shared_ptr<ProcessGroup> tp,
                               const TensorParallelOptions& opts = {});

}  // namespace strata::parallel
