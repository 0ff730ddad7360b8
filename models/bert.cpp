#include "models/bert.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "models/init.hpp"

namespace strata::models {

BertBlockImpl::BertBlockImpl(const ModelConfig& cfg) : dropout(cfg.dropout) {
  attn = register_module("attn", Attention(cfg, /*causal=*/false, /*rope=*/false));
  norm1 = register_module("norm1", Norm(cfg.d_model, cfg.norm_eps, false, cfg.bias));
  mlp = register_module("mlp", Mlp(cfg, Activation::GeluErf));
  norm2 = register_module("norm2", Norm(cfg.d_model, cfg.norm_eps, false, cfg.bias));
}

at::Tensor BertBlockImpl::forward(const at::Tensor& x, const std::optional<at::Tensor>& padding_mask) {
  // Captures by value: the backward pass of a checkpointed block calls the lambda again.
  return run_block(*this, x, [this, padding_mask](const at::Tensor& in) {
    auto h = norm1(in + at::dropout(attn(in, padding_mask), dropout, is_training()));
    return norm2(h + at::dropout(mlp(h), dropout, is_training()));
  });
}

Bert::Bert(const ModelConfig& cfg) : cfg_(cfg) {
  const int64_t d = cfg.d_model;
  tok_emb = register_module("tok_emb", Embedding(cfg.vocab_size, d));
  pos_emb = register_parameter("pos_emb", at::empty({cfg.max_seq_len, d}));
  type_emb = register_parameter("type_emb", at::empty({cfg.type_vocab_size, d}));
  emb_norm = register_module("emb_norm", Norm(d, cfg.norm_eps, false, cfg.bias));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.n_layer; ++i) blocks->push_back(BertBlock(cfg));
  mlm_dense = register_module("mlm_dense", Linear(d, d, cfg.bias, LinearRole::Replicated));
  mlm_norm = register_module("mlm_norm", Norm(d, cfg.norm_eps, false, cfg.bias));
  mlm_bias = register_parameter("mlm_bias", at::zeros({cfg.vocab_size}));
  tok_emb->vocab_aligned.push_back(mlm_bias);  // tensor parallelism splits it with the decoder's vocabulary
  init_weights(0);
}

void Bert::init_weights(uint64_t seed) {
  // BERT: truncated N(0, std) everywhere, no residual-projection scaling.
  init_transformer(*this, cfg_, seed, InitOptions{.scale_residual = false, .truncate = true});
}

at::Tensor Bert::encode(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask,
                        const std::optional<at::Tensor>& token_types) {
  return encode_blocks(ids, padding_mask, token_types, cfg_.n_layer);
}

at::Tensor Bert::encode_blocks(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask,
                               const std::optional<at::Tensor>& token_types, int64_t n_blocks) {
  if (n_blocks < 1 || n_blocks > cfg_.n_layer)
    fail("bert: a prefix of {} blocks is outside [1, {}] (model.n_layer)", n_blocks, cfg_.n_layer);
  const int64_t T = ids.size(1);
  if (T > cfg_.max_seq_len) fail("bert: sequence length {} exceeds model.max_seq_len = {}", T, cfg_.max_seq_len);
  // Positions and token types go through lookup_add (added once per token; a sequence-parallel
  // split adds each rank's part of them to its part of the sequence).
  auto add = pos_emb.narrow(0, 0, T);
  if (token_types) {
    if (token_types->sizes() != ids.sizes())
      fail("bert: token types have shape {} but the ids have {}", token_types->sizes(), ids.sizes());
    add = add + at::embedding(type_emb, *token_types);
  } else {
    add = add + type_emb[0];
  }
  auto x = at::dropout(emb_norm(tok_emb->lookup_add(ids, add)), cfg_.dropout, is_training());
  for (int64_t i = 0; i < n_blocks; ++i) x = blocks[i]->as<BertBlock>()->forward(x, padding_mask);
  return x;
}

at::Tensor Bert::mlm_logits(const at::Tensor& hidden) {
  auto h = mlm_norm(at::gelu(mlm_dense(hidden)));
  return tok_emb->logits(h) + mlm_bias;
}

at::Tensor Bert::forward_typed(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask,
                               const std::optional<at::Tensor>& token_types) {
  return mlm_logits(encode(ids, padding_mask, token_types));
}

at::Tensor Bert::forward_prefix(const at::Tensor& ids, int64_t n_blocks, const std::optional<at::Tensor>& padding_mask) {
  return mlm_logits(encode_blocks(ids, padding_mask, std::nullopt, n_blocks));
}

at::Tensor Bert::forward(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask) {
  return forward_typed(ids, padding_mask, std::nullopt);
}

}  // namespace strata::models
