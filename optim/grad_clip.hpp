// Global gradient-norm clipping.
#pragma once
#include <vector>

#include <ATen/core/Tensor.h>

#include "parallel/process_group.hpp"

namespace strata::optim {

// Total L2 norm of the gradients (fp32 accumulate).
double grad_norm(const std::vector<at::Tensor>& params);
// Scales gradients so their global norm is at most max_norm (no-op if max_norm <= 0). Returns the
// norm before clipping.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

// Across ranks: `params` are this rank's disjoint part of the gradients (a ZeRO-1 shard, a
// tensor-parallel slice); the squared norms are summed over `group` so every rank gets the global
// norm and applies the same scale. group == nullptr is the local version above.
double grad_norm(const std::vector<at::Tensor>& params, parallel::ProcessGroup* group);
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm, parallel::ProcessGroup* group);

// The scaling step of every clipping path (local, ZeRO-1 pieces, tensor-parallel, pipeline): given
// the global norm the caller computed, scales each defined gradient by max_norm / (norm + 1e-6) when
// norm > max_norm > 0. Returns `norm`.
double scale_grads_to_max_norm(const std::vector<at::Tensor>& params, double norm, double max_norm);

}  // namespace strata::optim
