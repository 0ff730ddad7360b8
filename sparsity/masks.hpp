// Mask construction and application. A mask is a bool tensor shaped like its weight: true = kept.
// Counts are exact per full matrix: round(sparsity * numel) zeros (spec §4.1, §4.3).
#pragma once
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

#include "parallel/process_group.hpp"
#include "sparsity/prunable.hpp"

namespace strata::sparsity {

// round(sparsity * numel), the number of zeros a matrix of numel entries gets.
int64_t zeros_for(double sparsity, int64_t numel);
// A 64-bit seed from the run's seed and the parameter's name (FNV-1a of the name, mixed), so every
// rank derives the same mask without communication and no rank number enters it.
uint64_t mask_seed(int64_t seed, const std::string& name);
// SPDF: exactly zeros_for(sparsity, full numel) zeros placed uniformly at random in the full
// matrix (a seeded permutation); returns this shard's slice, on the weight's device.
at::Tensor random_mask(const Prunable& p, double sparsity, int64_t seed);
// Magnitude pruning to `zeros` zeros in the full matrix: the entries already pruned (keep ==
// false) go first, then the smallest |w|, ties by global index; computed over `shard_group`, the
// ranks holding the matrix's shards (a one-rank group for a whole matrix).
at::Tensor magnitude_mask(const Prunable& p, const at::Tensor& keep, int64_t zeros, parallel::ProcessGroup& shard_group);
// t[~keep] = 0 in place (exact +0, also for tensors holding -x).
void apply_mask(at::Tensor& t, const at::Tensor& keep);

}  // namespace strata::sparsity
