// Token embedding whose table can also serve as the tied output layer (logits = x E^T). Rows are
// token ids. Like Linear, it carries an optional communication hook that parallel/ installs when it
// splits the rows across tensor-parallel ranks (vocab parallelism); the model code stays plain math.
#pragma once
#include <memory>
#include <vector>

#include <torch/nn/module.h>

namespace strata::models {

class EmbeddingComm {
 public:
  virtual ~EmbeddingComm() = default;
  // ids -> rows of `weight`, plus `add` (undefined, or per-position values [.., T, dim] aligned with
  // the trailing dimensions of the result, e.g. learned positions) added once per token.
  virtual at::Tensor lookup(const at::Tensor& weight, const at::Tensor& ids, const at::Tensor& add) = 0;
  virtual at::Tensor logits(const at::Tensor& weight, const at::Tensor& x) = 0;
};

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t vocab, int64_t dim);
  at::Tensor forward(const at::Tensor& ids);  // ids [..] -> [.., dim]
  // ids [B, T] -> embedding + add, with add [T, dim] (or broadcastable to [B, T, dim]): learned
  // positions go through here so that a sequence-parallel split can add each rank's positions to its
  // own part of the sequence.
  at::Tensor lookup_add(const at::Tensor& ids, const at::Tensor& add);
  at::Tensor logits(const at::Tensor& x);     // x [.., dim] -> [.., vocab] (tied output layer)

  at::Tensor weight;                   // [vocab, dim]
  std::shared_ptr<EmbeddingComm> comm;  // set by parallel/ when the rows are split
  // Parameters of the owning model indexed by the same vocabulary along their first dimension (e.g.
  // BERT's MLM decoder bias, added to logits()): a role, not math. parallel/ splits them with the
  // rows, so the model's `logits(x) + bias` stays local to each rank's vocabulary range.
  std::vector<at::Tensor> vocab_aligned;
};
TORCH_MODULE(Embedding);

}  // namespace strata::models
