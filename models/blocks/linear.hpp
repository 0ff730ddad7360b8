// A linear layer that names its role in tensor parallelism. Model code only says what the layer is
// (column-split, row-split, replicated); parallel/ decides how a role is split and communicated by
// installing a LinearComm on the layer. Weight layout is [out, in] as in torch.
#pragma once
#include <memory>

#include <torch/nn/module.h>

namespace strata::models {

enum class LinearRole {
  Replicated,  // every tensor-parallel rank holds the full layer
  Column,      // output features split across ranks (e.g. Q/K/V, MLP up/gate)
  Row,         // input features split across ranks, outputs summed (e.g. attention out, MLP down)
  Vocab,       // output features are the vocabulary (an untied LM head): split by vocab rows, never gathered
};

// Communication hooks around a linear layer, supplied by parallel/ (none on one rank).
class LinearComm {
 public:
  virtual ~LinearComm() = default;
  virtual at::Tensor before(const at::Tensor& x) { return x; }
  // Called with the matmul output without bias; returns the output with `bias` applied.
  virtual at::Tensor after(const at::Tensor& y, const at::Tensor& bias) { return bias.defined() ? y + bias : y; }
};

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias, LinearRole role);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;
  LinearRole role;
  int64_t unit = 1;  // features a split divides (Column: outputs, Row: inputs) come in groups of `unit` (heads)
  std::shared_ptr<LinearComm> comm;  // set by parallel/ when the layer is split
};
TORCH_MODULE(Linear);

}  // namespace strata::models
