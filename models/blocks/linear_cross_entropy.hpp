// The output projection and the cross-entropy in one pass over row chunks ("fused linear
// cross-entropy"), so the [N, vocab] logits, their fp32 copy, the log-softmax and their gradients are
// never held for the whole batch. For each chunk of rows it computes the logits, the loss and, while
// the logits are at hand, the gradients with respect to the features and the weight
// (dlogits = (softmax - onehot) / n_valid); backward then only scales the stored gradients by the
// incoming one. The products run in the autocast dtype when autocast is on (bf16 logits, fp32
// softmax, as the unfused trainer path); the weight gradient is accumulated in fp32 across chunks.
//
// Cost: the same three matmuls as logits + cross-entropy + their backward; extra memory [N, dim] + the
// weight's size (the stored gradients) instead of several [N, vocab] tensors. The loss it returns is
// the mean over non-ignored targets, as at::cross_entropy_loss(logits, targets) gives; it is
// differentiable once (Sophia-H's double backward needs the plain path).
#pragma once
#include <cstdint>

#include <optional>

#include <ATen/core/Tensor.h>

#include "models/blocks/embedding.hpp"
#include "models/blocks/linear.hpp"

namespace strata::models {

// The weight a causal LM's output head multiplies by: the untied `head`'s (when it is set) or the
// tied token embedding's; std::nullopt when parallel/ installed a communication hook on it.
std::optional<at::Tensor> plain_output_weight(const Linear& head, const Embedding& tok_emb);

struct LinearCrossEntropyOptions {
  int64_t ignore_index = -100;
  // Rows per chunk; 0 picks max(64, 2^24 / vocab) rows (a 64 MB fp32 logit chunk), at most N.
  int64_t chunk_rows = 0;
  // Vocabulary padding multiple for the products (models/blocks/vocab_projection.hpp); padded
  // columns are excluded from the softmax. 0 picks vocab_align_for(features).
  int64_t align = 0;
};

// features [N, dim] (or [.., dim]), weight [vocab, dim], targets int64 [N] (or [..]) -> scalar fp32
// mean loss over targets != ignore_index (NaN when there are none, as the unfused loss).
// With gradients enabled and features or weight requiring them, the gradients are computed here
// and returned by backward; otherwise only the loss is computed (chunked, no gradient work).
at::Tensor linear_cross_entropy(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& targets,
                                const LinearCrossEntropyOptions& opt = {});

}  // namespace strata::models
