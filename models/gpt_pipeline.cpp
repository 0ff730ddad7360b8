// GPT-2's pipeline-parallel pieces: the same math as Gpt::forward, cut at layer boundaries.
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/blocks/linear_cross_entropy.hpp"
#include "models/gpt.hpp"

namespace strata::models {

at::Tensor Gpt::forward_embed(const at::Tensor& ids) {
  const int64_t T = ids.size(1);
  if (T > cfg_.max_seq_len) fail("gpt: sequence length {} exceeds model.max_seq_len = {}", T, cfg_.max_seq_len);
  return at::dropout(tok_emb->lookup_add(ids, pos_emb.narrow(0, 0, T)), cfg_.dropout, is_training());
}

at::Tensor Gpt::forward_layers(const at::Tensor& x, int64_t begin, int64_t end) {
  if (begin < 0 || end > cfg_.n_layer || begin > end)
    fail("gpt: layer range [{}, {}) is outside the model's {} layers", begin, end, cfg_.n_layer);
  at::Tensor h = x;
  for (int64_t i = begin; i < end; ++i) h = blocks[i]->as<GptBlock>()->forward(h);
  return h;
}

at::Tensor Gpt::forward_head(const at::Tensor& x) {
  auto h = norm_f(x);
  return head ? head(h) : tok_emb->logits(h);
}

at::Tensor Gpt::head_features(const at::Tensor& x) { return norm_f(x); }

std::optional<at::Tensor> Gpt::head_weight() { return plain_output_weight(head, tok_emb); }

}  // namespace strata::models
