// Feed-forward blocks: GELU MLP (GPT-2: tanh approximation; BERT: exact erf) and SwiGLU (Llama).
#pragma once
#include <torch/nn/module.h>

#include "models/blocks/linear.hpp"
#include "models/config.hpp"

namespace strata::models {

enum class Activation { GeluTanh, GeluErf, SwiGLU };

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(const ModelConfig& cfg, Activation act);
  at::Tensor forward(const at::Tensor& x);

  Linear w1{nullptr}, w2{nullptr}, w3{nullptr};  // w3: SwiGLU's up projection (w1 is the gate)
  Activation act;
};
TORCH_MODULE(Mlp);

}  // namespace strata::models
