#include "reweighting/per_sequence.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::reweighting {

SequenceLosses per_sequence_from_tokens(const at::Tensor& token_loss, const at::Tensor& targets, int64_t ignore_index) {
  if (targets.dim() != 2) fail("reweighting: targets must be [batch, seq], got shape {}", targets.sizes());
  if (token_loss.numel() != targets.numel())
    fail("reweighting: {} per-token losses for {} targets ({})", token_loss.numel(), targets.numel(), targets.sizes());
  auto tl = token_loss.reshape(targets.sizes()).to(at::kFloat);
  auto valid = targets.ne(ignore_index).to(at::kFloat);
  SequenceLosses s;
  s.tokens = valid.sum(1);
  s.loss = (tl * valid).sum(1) / at::clamp_min(s.tokens, 1.0);
  return s;
}

SequenceLosses per_sequence_cross_entropy(const at::Tensor& logits, const at::Tensor& targets, int64_t ignore_index) {
  if (logits.dim() != 3) fail("reweighting: logits must be [batch, seq, vocab], got shape {}", logits.sizes());
  auto tok = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).to(at::kFloat), targets.reshape({-1}), {},
                                    at::Reduction::None, ignore_index);
  return per_sequence_from_tokens(tok, targets, ignore_index);
}

at::Tensor token_mean(const SequenceLosses& s) {
  return (s.loss * s.tokens).sum() / at::clamp_min(s.tokens.sum(), 1.0);
}

}  // namespace strata::reweighting
