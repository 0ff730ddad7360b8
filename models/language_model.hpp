// The interface the trainer sees: token ids in, logits out. Architectures register a factory by
// name (`model.arch`) in registry.cpp.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include <torch/nn/module.h>

#include "models/config.hpp"

namespace strata::models {

class LanguageModel : public torch::nn::Module {
 public:
  // ids int64 [B, T] -> logits [B, T, vocab]. padding_mask: bool [B, T], true = real token.
  virtual at::Tensor forward(const at::Tensor& ids, const std::optional<at::Tensor>& padding_mask = std::nullopt) = 0;
  virtual const ModelConfig& config() const = 0;
  // Re-initialises every parameter from `seed` (deterministic for a given config).
  virtual void init_weights(uint64_t seed) = 0;
};

std::shared_ptr<LanguageModel> make_model(const ModelConfig& cfg);

}  // namespace strata::models
