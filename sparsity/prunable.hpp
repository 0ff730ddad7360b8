// The prunable set (spec §2.1, §3): the weights of the Linear layers inside the Transformer blocks
// (Q/K/V, attention output, MLP matrices). Embeddings, norms, biases and the LM head stay dense.
// A prunable weight may be one tensor-parallel shard of a larger matrix; ShardLayout says which,
// so masks and thresholds are defined on the full matrix and agree with tp = 1.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "models/blocks/linear.hpp"

namespace strata::sparsity {

// This tensor is part `index` of `count` equal contiguous parts of the full matrix along `dim`
// (dim = -1: the whole matrix). `counted` = false: another rank of the shard group holds the same
// part (a KV head shared by several tp ranks) and counts it; this copy only applies the result.
struct ShardLayout {
  int64_t dim = -1;
  int64_t index = 0;
  int64_t count = 1;
  bool counted = true;
};

struct Prunable {
  std::string name;  // the parameter name, e.g. "blocks.0.attn.wq.weight"
  at::Tensor weight;
  ShardLayout shard;
};

// True for the module path of a Linear layer that is pruned: inside "blocks.<i>." and not a
// vocabulary (LM head) layer.
bool is_prunable_linear(const std::string& module_path, models::LinearRole role);
// The prunable weights of `model` in named_modules() order, each as a whole matrix (callers that
// shard by tensor parallelism set `shard` from the layer's role with layout_for_role).
std::vector<Prunable> prunable_set(torch::nn::Module& model);
// Megatron's split of a Linear layer by role across `count` tp ranks: Column rows, Row columns.
ShardLayout layout_for_role(models::LinearRole role, int64_t rank, int64_t count);
// The layout of tp rank `rank` when rank q holds elements [starts[q], starts[q] + local) of
// dimension `dim` (size `full`) -- parallel::ShardLayout's description. Ranks with equal starts
// share a part; only the lowest of them is `counted`. Fails unless the parts are equal and aligned.
ShardLayout layout_from_starts(int64_t dim, int64_t full, int64_t local, const std::vector<int64_t>& starts, int64_t rank);

// Sizes of the full matrix this shard belongs to.
std::vector<int64_t> full_sizes(const at::Tensor& local, const ShardLayout& shard);
int64_t full_numel(const at::Tensor& local, const ShardLayout& shard);
// For every local element, its row-major flat index in the full matrix (int64, local shape).
at::Tensor global_flat_index(const at::Tensor& local, const ShardLayout& shard);
// The shard's slice of a full-matrix tensor.
at::Tensor local_slice(const at::Tensor& full, const ShardLayout& shard);

}  // namespace strata::sparsity
