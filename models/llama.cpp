#include "models/llama.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/blocks/linear_cross_entropy.hpp"
#include "models/init.hpp"

namespace strata::models {

LlamaBlockImpl::LlamaBlockImpl(const ModelConfig& cfg) : dropout(cfg.dropout) {
  norm1 = register_module("norm1", Norm(cfg.d_model, cfg.norm_eps, /*rms=*/true));
  attn = register_module("attn", Attention(cfg, /*causal=*/true, /*rope=*/true));
  norm2 = register_module("norm2", Norm(cfg.d_model, cfg.norm_eps, /*rms=*/true));
  mlp = register_module("mlp", Mlp(cfg, Activation::SwiGLU));
}

at::Tensor LlamaBlockImpl::forward(const at::Tensor& x, const std::optional<at::Tensor>& padding_mask) {
  // Captures by value: the backward pass of a checkpointed block calls the lambda again.
  return run_block(*this, x, [this, padding_mask](const at::Tensor& in) {
    auto h = in + at::dropout(attn(norm1(in), padding_mask), dropout, is_training());
    return h + at::dropout(mlp(norm2(h)), dropout, is_training());
  });
}

Llama::Llama(const ModelConfig& cfg) : cfg_(cfg) {
  if (cfg.d_model % cfg.n_head != 0 || cfg.head_dim() % 2 != 0)
    fail("llama: model.d_model = {} must split into {} heads of an even size (RoPE rotates pairs)", cfg.d_model,
         cfg.n_head);
  tok_emb = register_module("tok_emb", Embedding(cfg.vocab_size, cfg.d_model));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.n_layer; ++i) blocks->push_back(LlamaBlock(cfg));
  norm_f = register_module("norm_f", Norm(cfg.d_model, cfg.norm_eps, /*rms=*/true));
  if (!cfg.tie_embeddings) head = register_module("head", Linear(cfg.d_model, cfg.vocab_size, false, LinearRole::Vocab));
  init_weights(0);
}

void Llama::init_weights(uint64_t seed) { init_transformer(*this, cfg_, seed); }

at::Tensor Llama::forward_embed(const at::Tensor& ids) {
  const int64_t T = ids.size(1);
  if (T > cfg_.max_seq_len) fail("llama: sequence length {} exceeds model.max_seq_len = {}", T, cfg_.max_seq_len);
  return at::dropout(tok_emb(ids), cfg_.dropout, is_training());
}

at::Tensor Llama::forward_layers(const at::Tensor& x, int64_t begin, int64_t end) {
  if (begin < 0 || end > cfg_.n_layer || begin > end)
    fail("llama: layer range [{}, {}) is outside the model's {} layers", begin, end, cfg_.n_layer);
  at::Tensor h = x;
  for (int64_t i = begin; i < end; ++i) h = blocks[i]->as<LlamaBlock>()->forward(h);
  return h;
}

at::Tensor Llama::forward_head(const at::Tensor& x) {
  auto h = norm_f(x);
  return head ? head(h) : tok_emb->logits(h);
}

at::Tensor Llama::head_features(const at::Tensor& x) { return norm_f(x); }

std::optional<at::Tensor> Llama::head_weight() { return plain_output_weight(head, tok_emb); }

at::Tensor Llama::forward(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask) {
  return forward_prefix(ids, cfg_.n_layer, padding_mask);
}

at::Tensor Llama::forward_prefix(const at::Tensor& ids, int64_t n_blocks, const std::optional<at::Tensor>& padding_mask) {
  if (n_blocks < 1 || n_blocks > cfg_.n_layer)
    fail("llama: a prefix of {} blocks is outside [1, {}] (model.n_layer)", n_blocks, cfg_.n_layer);
  auto x = forward_embed(ids);
  for (int64_t i = 0; i < n_blocks; ++i) x = blocks[i]->as<LlamaBlock>()->forward(x, padding_mask);
  return forward_head(x);
}

}  // namespace strata::models
