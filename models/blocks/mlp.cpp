#include "models/blocks/mlp.hpp"

#include <ATen/ATen.h>

namespace strata::models {

MlpImpl::MlpImpl(const ModelConfig& cfg, Activation a) : act(a) {
  const int64_t d = cfg.d_model, h = cfg.ffn_hidden();
  w1 = register_module("w1", Linear(d, h, cfg.bias, LinearRole::Column));
  if (act == Activation::SwiGLU) w3 = register_module("w3", Linear(d, h, cfg.bias, LinearRole::Column));
  w2 = register_module("w2", Linear(h, d, cfg.bias, LinearRole::Row));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  switch (act) {
    case Activation::GeluTanh: return w2(at::gelu(w1(x), "tanh"));
    case Activation::GeluErf: return w2(at::gelu(w1(x)));
    case Activation::SwiGLU: return w2(at::silu(w1(x)) * w3(x));
  }
  return {};
}

}  // namespace strata::models
