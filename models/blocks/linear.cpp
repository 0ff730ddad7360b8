#include "models/blocks/linear.hpp"

#include <ATen/ATen.h>

#include "models/blocks/vocab_projection.hpp"

namespace strata::models {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, LinearRole r) : role(r) {
  weight = register_parameter("weight", at::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", at::zeros({out}));
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  if (!comm) {
    if (role == LinearRole::Vocab && !bias.defined()) return vocab_projection(x, weight, vocab_align_for(x));
    return at::linear(x, weight, bias);
  }
  return comm->after(at::linear(comm->before(x), weight), bias);
}

}  // namespace strata::models
