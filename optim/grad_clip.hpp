// Global gradient-norm clipping.
#pragma once
#include <vector>

#include <ATen/core/Tensor.h>

namespace strata::optim {

// Total L2 norm of the gradients (fp32 accumulate).
double grad_norm(const std::vector<at::Tensor>& params);
// Scales gradients so their global norm is at most max_norm (no-op if max_norm <= 0). Returns the
// norm before clipping.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace strata::optim
