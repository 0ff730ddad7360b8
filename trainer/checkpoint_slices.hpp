// Per-rank checkpoint slices under tensor and pipeline parallelism: where this rank's copy of a
// tensor (a parameter, or an optimizer moment of the parameter's shape) lies in the tensor a
// (tp, pp, dp) = (1, 1, 1) run saves under the same name, so that each rank writes its own part into
// the sliced format (checkpoint/sliced.hpp) and reads back only the part it holds, under any layout.
//
//   tp-sharded parameter  split along ShardLayout::dim; this rank holds global elements
//                         [start, start + valid) there, local rows at or beyond `valid` are vocabulary
//                         padding (not saved, zero on load); ranks sharing a range (KV heads replicated
//                         over tp) write it once, from the first of them.
//   replicated            whole; the caller decides which rank writes it (tp rank 0, dp rank 0, and
//                         for the tied embedding held by both pipeline ends, pp rank 0).
// ZeRO-1 pieces are flat ranges of the local tensor; they become boxes of the global tensor.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "checkpoint/sliced.hpp"
#include "parallel/parallelize.hpp"

namespace strata::trainer {

struct LocalPlacement {
  std::vector<int64_t> local_shape, global_shape;
  int64_t dim = -1;               // split dimension; -1: this rank holds the tensor whole
  int64_t start = 0, valid = 0;   // along dim: global offset, and local rows inside the global tensor
  bool writer = true;             // this rank writes its part (false: another rank holds the same elements)

  // The global box of this rank's valid elements; empty() when it holds none (all padding).
  checkpoint::Region global_box() const;
  bool empty() const { return dim >= 0 && valid == 0; }
};

// `layout`: the parameter's tp layout (null when replicated); `tp_rank`: this rank in the tp group.
LocalPlacement placement_of(const std::vector<int64_t>& local_shape, const parallel::ShardLayout* layout, int64_t tp_rank);

// Saving: this rank's part of `local` (shaped like the placement's local tensor) as slices of `name`.
void add_local_slices(std::vector<checkpoint::OwnedSlice>& out, const std::string& name, const LocalPlacement& pl,
                      const at::Tensor& local);
// The same for the flat range [at, at + flat.numel()) of the local tensor's row-major elements (ZeRO-1).
void add_local_range_slices(std::vector<checkpoint::OwnedSlice>& out, const std::string& name, const LocalPlacement& pl,
                            int64_t at, const at::Tensor& flat);

// Loading: the local tensor (padding rows zero), reading only the slices that overlap this rank's part;
// fails naming the tensor when the checkpoint's global shape is not the placement's.
at::Tensor read_local(const checkpoint::CheckpointReader& r, const std::string& name, const LocalPlacement& pl);
// The flat range [at, at + n) of the local tensor (ZeRO-1 pieces).
at::Tensor read_local_range(const checkpoint::CheckpointReader& r, const std::string& name, const LocalPlacement& pl,
                            int64_t at, int64_t n);

}  // namespace strata::trainer
