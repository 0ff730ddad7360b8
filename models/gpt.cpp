#include "models/gpt.hpp"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/init.hpp"

namespace strata::models {

GptBlockImpl::GptBlockImpl(const ModelConfig& cfg) : dropout(cfg.dropout) {
  norm1 = register_module("norm1", Norm(cfg.d_model, cfg.norm_eps, false, cfg.bias));
  attn = register_module("attn", Attention(cfg, /*causal=*/true, /*rope=*/false));
  norm2 = register_module("norm2", Norm(cfg.d_model, cfg.norm_eps, false, cfg.bias));
  mlp = register_module("mlp", Mlp(cfg, Activation::GeluTanh));
}

at::Tensor GptBlockImpl::forward(const at::Tensor& x) {
  return run_block(*this, x, [this](const at::Tensor& in) {
    auto h = in + at::dropout(attn(norm1(in)), dropout, is_training());
    return h + at::dropout(mlp(norm2(h)), dropout, is_training());
  });
}

Gpt::Gpt(const ModelConfig& cfg) : cfg_(cfg) {
  tok_emb = register_module("tok_emb", Embedding(cfg.vocab_size, cfg.d_model));
  pos_emb = register_parameter("pos_emb", at::empty({cfg.max_seq_len, cfg.d_model}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.n_layer; ++i) blocks->push_back(GptBlock(cfg));
  norm_f = register_module("norm_f", Norm(cfg.d_model, cfg.norm_eps, false, cfg.bias));
  if (!cfg.tie_embeddings) head = register_module("head", Linear(cfg.d_model, cfg.vocab_size, false, LinearRole::Vocab));
  init_weights(0);
}

void Gpt::init_weights(uint64_t seed) { init_transformer(*this, cfg_, seed); }

at::Tensor Gpt::forward(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask) {
  const int64_t T = ids.size(1);
  if (T > cfg_.max_seq_len) fail("gpt: sequence length {} exceeds model.max_seq_len = {}", T, cfg_.max_seq_len);
  auto x = tok_emb->lookup_add(ids, pos_emb.narrow(0, 0, T));
  x = at::dropout(x, cfg_.dropout, is_training());
  for (const auto& b : *blocks) x = b->as<GptBlock>()->forward(x);
  x = norm_f(x);
  return head ? head(x) : tok_emb->logits(x);
}

at::Tensor Gpt::forward_prefix(const at::Tensor& ids, int64_t n_blocks, const std::optional<at::Tensor>& /*padding_mask*/) {
  if (n_blocks < 1 || n_blocks > cfg_.n_layer)
    fail("gpt: a prefix of {} blocks is outside [1, {}] (model.n_layer)", n_blocks, cfg_.n_layer);
  return forward_head(forward_layers(forward_embed(ids), 0, n_blocks));  // gpt_pipeline.cpp: the same math as forward
}

}  // namespace strata::models
