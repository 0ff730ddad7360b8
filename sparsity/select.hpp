// Distributed k-th value (spec §3): which k entries of a matrix split across the ranks of a
// ProcessGroup are the smallest in the total order (key, global index) -- ties in the key go to
// the smaller global index, so every split of the matrix selects the same entries as one rank.
// Nothing is gathered: a bisection over the key range, then over the index range, where each probe
// counts candidates locally and sums the counts with one all-reduce (about 32 + log2(numel)
// scalar all-reduces per matrix). Every rank of the group must call it with the same k.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

#include "parallel/process_group.hpp"

namespace strata::sparsity {

// keys, index: int64 tensors of the same shape (this rank's part); keys >= 0, indices unique over
// the counted parts of the group and < index_bound. Returns a bool tensor, true at this rank's
// selected entries. counted = false: this rank's part is a bitwise copy of another rank's counted
// part (it adds nothing to the counts and gets the same selection as that rank).
at::Tensor select_smallest(const at::Tensor& keys, const at::Tensor& index, int64_t k, int64_t index_bound,
                           parallel::ProcessGroup& group, bool counted = true);

// Order-preserving int64 key of |w|: 0 for entries in `pruned` (so they are selected first and
// masks stay nested), else the float32 bit pattern of |w| plus one.
at::Tensor magnitude_keys(const at::Tensor& weight, const at::Tensor& pruned);

}  // namespace strata::sparsity
