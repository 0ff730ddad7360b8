#include "sparsity/prunable.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::sparsity {

bool is_prunable_linear(const std::string& path, models::LinearRole role) {
  if (role == models::LinearRole::Vocab) return false;
  return path.rfind("blocks.", 0) == 0 || path.find(".blocks.") != std::string::npos;
}

std::vector<Prunable> prunable_set(torch::nn::Module& model) {
  std::vector<Prunable> out;
  for (const auto& kv : model.named_modules()) {
    auto* lin = dynamic_cast<models::LinearImpl*>(kv.value().get());
    if (!lin || !is_prunable_linear(kv.key(), lin->role)) continue;
    out.push_back({kv.key() + ".weight", lin->weight, {}});
  }
  return out;
}

ShardLayout layout_for_role(models::LinearRole role, int64_t rank, int64_t count) {
  if (count <= 1) return {};
  switch (role) {
    case models::LinearRole::Column: return {0, rank, count};
    case models::LinearRole::Row: return {1, rank, count};
    default: return {};
  }
}

ShardLayout layout_from_starts(int64_t dim, int64_t full, int64_t local, const std::vector<int64_t>& starts, int64_t rank) {
  if (rank < 0 || rank >= static_cast<int64_t>(starts.size()) || local <= 0 || full % local != 0)
    fail("sparsity: tp layout (dim {}, {} of {} per rank, {} ranks) cannot be split into equal parts for rank {}", dim,
         local, full, starts.size(), rank);
  for (auto s : starts)
    if (s % local != 0 || s < 0 || s + local > full)
      fail("sparsity: tp layout (dim {}) has a part starting at {} of {} elements, not aligned to parts of {}", dim, s,
           full, local);
  ShardLayout l{dim, starts[rank] / local, full / local, true};
  for (int64_t q = 0; q < rank; ++q)
    if (starts[q] == starts[rank]) l.counted = false;
  return l;
}

std::vector<int64_t> full_sizes(const at::Tensor& local, const ShardLayout& shard) {
  auto sizes = local.sizes().vec();
  if (shard.dim >= 0) {
    if (shard.dim >= static_cast<int64_t>(sizes.size()) || shard.count < 1 || shard.index < 0 || shard.index >= shard.count)
      fail("sparsity: shard layout (dim {}, part {} of {}) does not fit a tensor of shape {}", shard.dim, shard.index,
           shard.count, local.sizes());
    sizes[shard.dim] *= shard.count;
  }
  return sizes;
}

int64_t full_numel(const at::Tensor& local, const ShardLayout& shard) {
  int64_t n = 1;
  for (auto s : full_sizes(local, shard)) n *= s;
  return n;
}

at::Tensor global_flat_index(const at::Tensor& local, const ShardLayout& shard) {
  const auto full = full_sizes(local, shard);
  const int64_t nd = static_cast<int64_t>(full.size());
  auto opts = at::TensorOptions().dtype(at::kLong).device(local.device());
  at::Tensor idx = at::zeros(local.sizes(), opts);
  int64_t stride = 1;
  for (int64_t d = nd - 1; d >= 0; --d) {
    const int64_t offset = d == shard.dim ? shard.index * local.size(d) : 0;
    std::vector<int64_t> view(nd, 1);
    view[d] = local.size(d);
    idx.add_((at::arange(local.size(d), opts) + offset).mul_(stride).view(view));
    stride *= full[d];
  }
  return idx;
}

at::Tensor local_slice(const at::Tensor& full, const ShardLayout& shard) {
  if (shard.dim < 0) return full;
  const int64_t part = full.size(shard.dim) / shard.count;
  return full.narrow(shard.dim, shard.index * part, part);
}

}  // namespace strata::sparsity
