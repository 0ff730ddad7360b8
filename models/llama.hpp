// Llama (Meta reference shape, specs/models.md §2): pre-norm decoder with RMSNorm, rotary position
// embedding (Meta's interleaved-pair layout, theta from model.rope_theta), grouped-query attention
// (model.n_kv_head), SwiGLU MLP with the 2/3*4d hidden rule rounded to model.multiple_of, final
// RMSNorm, output head untied unless model.tie_embeddings. Biases follow model.bias (false for
// every Llama preset; HF's attention_bias/mlp_bias when true).
#pragma once
#include <torch/nn/modules/container/modulelist.h>

#include "models/activation_checkpoint.hpp"
#include "models/blocks/attention.hpp"
#include "models/blocks/embedding.hpp"
#include "models/blocks/mlp.hpp"
#include "models/blocks/norm.hpp"
#include "models/language_model.hpp"

namespace strata::models {

class LlamaBlockImpl : public torch::nn::Module, public CheckpointableBlock {
 public:
  explicit LlamaBlockImpl(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x, const std::optional<at::Tensor>& padding_mask = std::nullopt);

  Norm norm1{nullptr}, norm2{nullptr};  // attention_norm, ffn_norm (RMSNorm)
  Attention attn{nullptr};
  Mlp mlp{nullptr};  // w1 = gate, w3 = up, w2 = down
  double dropout;
};
TORCH_MODULE(LlamaBlock);

class Llama : public LanguageModel {
 public:
  explicit Llama(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask = std::nullopt) override;
  const ModelConfig& config() const override { return cfg_; }
  void init_weights(uint64_t seed) override;
  // Pipeline pieces: forward(ids) == forward_head(forward_layers(forward_embed(ids), 0, L)).
  at::Tensor forward_embed(const at::Tensor& ids) override;
  at::Tensor forward_layers(const at::Tensor& x, int64_t begin, int64_t end) override;
  at::Tensor forward_head(const at::Tensor& x) override;
  at::Tensor head_features(const at::Tensor& x) override;  // the final norm
  std::optional<at::Tensor> head_weight() override;
  at::Tensor forward_prefix(const at::Tensor& ids, int64_t n_blocks,
                            const std::optional<at::Tensor>& padding_mask = std::nullopt) override;

  Embedding tok_emb{nullptr};  // also the output layer when embeddings are tied
  torch::nn::ModuleList blocks;
  Norm norm_f{nullptr};
  Linear head{nullptr};  // only when embeddings are untied

 private:
  ModelConfig cfg_;
};

}  // namespace strata::models
