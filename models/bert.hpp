// BERT (specs/models.md §2): post-LN encoder with learned positions and token-type embeddings,
// embedding LayerNorm, bidirectional attention with a padding mask, GELU (erf) MLP, and the MLM
// head (dense d->d, GELU, LayerNorm, decoder tied to the token embeddings plus its own vocabulary
// bias). forward() returns MLM logits; token types default to 0 (segment A). LayerNorm eps comes
// from model.norm_eps (1e-12 in the BERT presets).
//
// The pooler (tanh(dense(h_[CLS])), used only by next-sentence prediction and fine-tuning) is not
// part of this model: BertForMaskedLM has none either. flops.hpp's bert_pooler_params() accounts
// for it when comparing with BertModel counts, and `strata import` skips pooler weights.
#pragma once
#include <torch/nn/modules/container/modulelist.h>

#include "models/activation_checkpoint.hpp"
#include "models/blocks/attention.hpp"
#include "models/blocks/embedding.hpp"
#include "models/blocks/mlp.hpp"
#include "models/blocks/norm.hpp"
#include "models/language_model.hpp"

namespace strata::models {

class BertBlockImpl : public torch::nn::Module, public CheckpointableBlock {
 public:
  explicit BertBlockImpl(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x, const std::optional<at::Tensor>& padding_mask = std::nullopt);

  Attention attn{nullptr};
  Norm norm1{nullptr};  // after attention + residual
  Mlp mlp{nullptr};
  Norm norm2{nullptr};  // after MLP + residual
  double dropout;
};
TORCH_MODULE(BertBlock);

class Bert : public LanguageModel {
 public:
  explicit Bert(const ModelConfig& cfg);
  // ids [B, T] -> MLM logits [B, T, vocab]; token types all 0.
  at::Tensor forward(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask = std::nullopt) override;
  // The same with explicit token types (int64 [B, T], values < model.type_vocab_size).
  at::Tensor forward_typed(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask,
                           const std::optional<at::Tensor>& token_types);
  // The encoder's last hidden states [B, T, d] (what a pooler or a task head reads).
  at::Tensor encode(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask,
                    const std::optional<at::Tensor>& token_types = std::nullopt);
  // MLM logits of the bottom `n_blocks` encoder blocks (shared embeddings and MLM head; token types 0).
  at::Tensor forward_prefix(const at::Tensor& ids, int64_t n_blocks,
                            const std::optional<at::Tensor>& padding_mask = std::nullopt) override;
  const ModelConfig& config() const override { return cfg_; }
  void init_weights(uint64_t seed) override;

  Embedding tok_emb{nullptr};  // also the MLM decoder (tied)
  at::Tensor pos_emb, type_emb;
  Norm emb_norm{nullptr};
  torch::nn::ModuleList blocks;
  Linear mlm_dense{nullptr};  // MLM transform: dense d->d, GELU, LayerNorm
  Norm mlm_norm{nullptr};
  at::Tensor mlm_bias;  // [vocab], the decoder's own bias

 private:
  at::Tensor encode_blocks(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask,
                           const std::optional<at::Tensor>& token_types, int64_t n_blocks);
  at::Tensor mlm_logits(const at::Tensor& hidden);
  ModelConfig cfg_;
};

}  // namespace strata::models
