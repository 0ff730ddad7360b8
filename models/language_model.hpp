// The interface the trainer sees: token ids in, logits out. Architectures register a factory by
// name (`model.arch`) in registry.cpp.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include <torch/nn/module.h>

#include "core/error.hpp"
#include "models/config.hpp"

namespace strata::models {

class LanguageModel : public torch::nn::Module {
 public:
  // ids int64 [B, T] -> logits [B, T, vocab]. padding_mask: bool [B, T], true = real token.
  virtual at::Tensor forward(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask = std::nullopt) = 0;
  virtual const ModelConfig& config() const = 0;
  // Re-initialises every parameter from `seed` (deterministic for a given config).
  virtual void init_weights(uint64_t seed) = 0;

  // Pipeline-parallel hooks (plain math, no communication); a model that supports pp satisfies
  // forward(ids) == forward_head(forward_layers(forward_embed(ids), 0, config().n_layer)).
  virtual at::Tensor forward_embed(const at::Tensor& ids) { return no_pipeline("forward_embed"); }
  virtual at::Tensor forward_layers(const at::Tensor& x, int64_t begin, int64_t end) { return no_pipeline("forward_layers"); }
  virtual at::Tensor forward_head(const at::Tensor& x) { return no_pipeline("forward_head"); }
  // The output head split for the fused loss (models/blocks/linear_cross_entropy.hpp):
  // forward_head(x) == head_features(x) @ (*head_weight())^T. head_weight() is std::nullopt when the
  // head is not a plain product (BERT's MLM transform and bias, a tensor-parallel head).
  virtual at::Tensor head_features(const at::Tensor& x) { return no_pipeline("head_features"); }
  virtual std::optional<at::Tensor> head_weight() { return std::nullopt; }
  // The model cut to its bottom `n_blocks` blocks: embeddings, blocks [0, n_blocks), then the final
  // norm and the output head, all shared with the full model (bert2BERT two-stage pre-training,
  // stage 1: the sampled sub-model). forward_prefix(ids, config().n_layer) == forward(ids);
  // n_blocks outside [1, n_layer] fails.
  virtual at::Tensor forward_prefix(const at::Tensor& ids, int64_t n_blocks,
                                    const std::optional<at::Tensor>& padding_mask = std::nullopt) {
    fail("model.arch '{}' does not implement forward_prefix (a bottom-blocks sub-model)", config().arch);
  }
  // Which pipeline part holds parameter `name`: -1 the embeddings, i in [0, n_layer) layer i (named
  // "blocks.<i>."), n_layer the final norm and head. A tied head reads the embedding (-1) too.
  int64_t pipeline_part(const std::string& name) const {
    if (name.rfind("blocks.", 0) == 0) return std::stoll(name.substr(7, name.find('.', 7) - 7));
    if (name.find("emb") != std::string::npos) return -1;
    return config().n_layer;
  }

 private:
  at::Tensor no_pipeline(const char* what) const {
    fail("model.arch '{}' does not implement {} and cannot run with parallel.pp > 1", config().arch, what);
  }
};

std::shared_ptr<LanguageModel> make_model(const ModelConfig& cfg);

}  // namespace strata::models
