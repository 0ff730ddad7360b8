#include "models/blocks/embedding.hpp"

#include <ATen/ATen.h>

#include "models/blocks/vocab_projection.hpp"

namespace strata::models {

EmbeddingImpl::EmbeddingImpl(int64_t vocab, int64_t dim) { weight = register_parameter("weight", at::empty({vocab, dim})); }

at::Tensor EmbeddingImpl::forward(const at::Tensor& ids) {
  return comm ? comm->lookup(weight, ids, at::Tensor()) : at::embedding(weight, ids);
}

at::Tensor EmbeddingImpl::lookup_add(const at::Tensor& ids, const at::Tensor& add) {
  return comm ? comm->lookup(weight, ids, add) : at::embedding(weight, ids) + add;
}

at::Tensor EmbeddingImpl::logits(const at::Tensor& x) {
  return comm ? comm->logits(weight, x) : vocab_projection(x, weight, vocab_align_for(x));
}

}  // namespace strata::models
