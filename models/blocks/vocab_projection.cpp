#include "models/blocks/vocab_projection.hpp"

#include <ATen/ATen.h>

namespace strata::models {

int64_t vocab_align_for(const at::Tensor& x) { return x.is_cuda() ? 64 : 1; }

at::Tensor vocab_projection(const at::Tensor& x, const at::Tensor& weight, int64_t align) {
  const int64_t vocab = weight.size(0);
  if (align <= 1 || vocab % align == 0) return at::linear(x, weight);
  const int64_t padded = (vocab + align - 1) / align * align;
  // Zero rows at the end of dimension 0 (pad takes (last dim before, after, first dim before, after)).
  auto w = at::constant_pad_nd(weight, {0, 0, 0, padded - vocab}, 0.0);
  return at::linear(x, w).narrow(-1, 0, vocab);
}

}  // namespace strata::models
