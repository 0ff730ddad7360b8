// The output projection onto the vocabulary (logits = x W^T, W [vocab, dim]) with the vocabulary
// dimension padded for the matrix units. GPU GEMM libraries need leading dimensions that are
// multiples of 8 (16 bytes of bf16) for their fast kernels: with GPT-2's 50,257 tokens cuBLAS falls
// back to sm75-era kernels, and on an H100 the three LM-head matmuls took 30 ms of an 86 ms GPT-2 124M
// step (scripts/gpu/check.sh, 2026-11-27); the same model with 50,304 tokens ran 1.45x faster. Here
// the weight is padded with zero rows to a multiple of `align` for the product and the result is
// narrowed back to `vocab` columns, so the function (and every parameter's shape) is unchanged.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace strata::models {

// The padding multiple used for x's device: 64 on CUDA, 1 (no padding) elsewhere.
int64_t vocab_align_for(const at::Tensor& x);

// x [.., dim], weight [vocab, dim] -> logits [.., vocab] (a view of [.., padded vocab] when padded).
at::Tensor vocab_projection(const at::Tensor& x, const at::Tensor& weight, int64_t align);

}  // namespace strata::models
