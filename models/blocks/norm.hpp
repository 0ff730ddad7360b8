// Normalisation layers: LayerNorm (GPT-2, BERT) and RMSNorm (Llama), behind one module type.
#pragma once
#include <torch/nn/module.h>

namespace strata::models {

class NormImpl : public torch::nn::Module {
 public:
  // kind: "layernorm" (weight + bias) or "rmsnorm" (weight only).
  NormImpl(int64_t dim, double eps, bool rms, bool bias = true);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;
  double eps;
  bool rms;
};
TORCH_MODULE(Norm);

}  // namespace strata::models
