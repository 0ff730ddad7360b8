// GPT-2: pre-LN decoder, learned positions, GELU (tanh) MLP, tied embeddings (specs/models.md §2).
#pragma once
#include <torch/nn/modules/container/modulelist.h>

#include "models/activation_checkpoint.hpp"
#include "models/blocks/attention.hpp"
#include "models/blocks/embedding.hpp"
#include "models/blocks/mlp.hpp"
#include "models/blocks/norm.hpp"
#include "models/language_model.hpp"

namespace strata::models {

class GptBlockImpl : public torch::nn::Module, public CheckpointableBlock {
 public:
  explicit GptBlockImpl(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x);

  Norm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
  double dropout;
};
TORCH_MODULE(GptBlock);

class Gpt : public LanguageModel {
 public:
  explicit Gpt(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask = std::nullopt) override;
  const ModelConfig& config() const override { return cfg_; }
  void init_weights(uint64_t seed) override;
  at::Tensor forward_embed(const at::Tensor& ids) override;  // pipeline hooks: gpt_pipeline.cpp
  at::Tensor forward_layers(const at::Tensor& x, int64_t begin, int64_t end) override;
  at::Tensor forward_head(const at::Tensor& x) override;
  at::Tensor head_features(const at::Tensor& x) override;  // the final norm
  std::optional<at::Tensor> head_weight() override;
  at::Tensor forward_prefix(const at::Tensor& ids, int64_t n_blocks,
                            const std::optional<at::Tensor>& padding_mask = std::nullopt) override;

  Embedding tok_emb{nullptr};  // also the output layer when embeddings are tied
  at::Tensor pos_emb;
  torch::nn::ModuleList blocks;
  Norm norm_f{nullptr};
  Linear head{nullptr};  // only when embeddings are untied

 private:
  ModelConfig cfg_;
};

}  // namespace strata::models
