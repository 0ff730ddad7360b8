#include "sparsity/masks.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "sparsity/select.hpp"

namespace strata::sparsity {

int64_t zeros_for(double sparsity, int64_t numel) {
  if (!(sparsity >= 0.0 && sparsity <= 1.0)) fail("sparsity = {} is outside [0, 1]", sparsity);
  return std::llround(sparsity * static_cast<double>(numel));
}

uint64_t mask_seed(int64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  uint64_t x = h ^ (static_cast<uint64_t>(seed) + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2));
  x ^= x >> 33, x *= 0xff51afd7ed558ccdULL, x ^= x >> 33;  // murmur3 finaliser
  return x;
}

at::Tensor random_mask(const Prunable& p, double sparsity, int64_t seed) {
  const auto sizes = full_sizes(p.weight, p.shard);
  const int64_t n = full_numel(p.weight, p.shard), zeros = zeros_for(sparsity, n);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(mask_seed(seed, p.name));
  at::Tensor perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
  at::Tensor keep = at::ones({n}, at::TensorOptions().dtype(at::kBool));
  keep.index_fill_(0, perm.slice(0, 0, zeros), false);
  return local_slice(keep.view(sizes), p.shard).contiguous().to(p.weight.device());
}

at::Tensor magnitude_mask(const Prunable& p, const at::Tensor& keep, int64_t zeros, parallel::ProcessGroup& shard_group) {
  torch::NoGradGuard no_grad;
  const int64_t n = full_numel(p.weight, p.shard);
  if (zeros < 0 || zeros > n) fail("sparsity: {} zeros asked of '{}', which has {} entries", zeros, p.name, n);
  at::Tensor pruned = keep.defined() ? keep.logical_not() : at::Tensor();
  at::Tensor sel = select_smallest(magnitude_keys(p.weight, pruned), global_flat_index(p.weight, p.shard), zeros, n,
                                   shard_group, p.shard.counted);
  return sel.logical_not();
}

void apply_mask(at::Tensor& t, const at::Tensor& keep) {
  torch::NoGradGuard no_grad;
  t.masked_fill_(keep.logical_not(), 0);
}

}  // namespace strata::sparsity
