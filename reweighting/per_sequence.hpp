// Per-sequence losses (specs/reweighting.md §2.1): l_i = mean token cross-entropy over row i's valid
// (target != ignore_index) positions, with the valid-token count n_i. A row with no valid token has
// l_i = 0 and n_i = 0. Works from logits, or from per-token losses such as
// parallel::vocab_parallel_cross_entropy's (already full values after its all-reduces).
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace strata::reweighting {

struct SequenceLosses {
  at::Tensor loss;    // [B] float32, differentiable
  at::Tensor tokens;  // [B] float32 valid-token counts, no gradient
};

// token_loss: [B*T] or [B, T] per-token losses (0 at ignored positions); targets: [B, T].
SequenceLosses per_sequence_from_tokens(const at::Tensor& token_loss, const at::Tensor& targets,
                                        int64_t ignore_index = -100);
// logits [B, T, V], targets [B, T]: cross-entropy in float32 with reduction none, then per-row means.
SequenceLosses per_sequence_cross_entropy(const at::Tensor& logits, const at::Tensor& targets,
                                          int64_t ignore_index = -100);
// The plain mean over all valid tokens (what at::cross_entropy_loss(..., Mean) gives).
at::Tensor token_mean(const SequenceLosses& s);

}  // namespace strata::reweighting
