// Vocabulary parallelism (specs/models.md §4): the embedding table and the output layer are split by
// rows (token ids) across the tp group, and the cross-entropy is computed from the local logit
// shards without ever gathering a [tokens, vocab] tensor.
//
// Padding rule: the vocabulary V is padded to V' = the smallest multiple of `multiple * t` that is
// >= V (Megatron uses multiple = 128; tiny models may use a smaller multiple, 1 included). Rank r
// owns the padded ids [r*V'/t, (r+1)*V'/t). Padded rows are zero in the embedding, are never looked
// up, and their logits are masked to -inf in the loss, so they get no gradient and change nothing.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

#include "parallel/process_group.hpp"

namespace strata::parallel {

struct VocabShard {
  int64_t vocab = 0;   // real vocabulary size V
  int64_t padded = 0;  // V'
  int64_t start = 0;   // first padded id owned by this rank
  int64_t end = 0;     // one past the last
  int64_t local() const { return end - start; }
};

int64_t padded_vocab_size(int64_t vocab, int64_t tp, int64_t multiple);
VocabShard vocab_shard(int64_t vocab, int64_t tp, int64_t rank, int64_t multiple);

// Rows [shard.start, shard.end) of `full` [V, ...] padded with zero rows up to V'.
at::Tensor vocab_rows(const at::Tensor& full, const VocabShard& shard);

// Embedding lookup with a row shard `table` [V'/t, d]: ids outside the local range give zero
// vectors, and the partial results are summed over the group (g: all-reduce forward, identity
// backward). With reduce_scatter_dim >= 0 the sum is reduce-scattered along that dimension instead
// (sequence parallelism: the result is this rank's chunk of the sequence).
at::Tensor vocab_parallel_embedding(const at::Tensor& table, const at::Tensor& ids, const VocabShard& shard,
                                    ProcessGroup& group, int64_t reduce_scatter_dim = -1);

// Per-token cross-entropy [N] from local logits [N, V'/t] and global target ids [N]. Communicates
// three all-reduces of N scalars (max, sum of exp, target logit). Targets equal to ignore_index give
// loss 0 and no gradient. Gradient: softmax_local - onehot_local, padded columns excluded.
at::Tensor vocab_parallel_cross_entropy(const at::Tensor& logits, const at::Tensor& targets, const VocabShard& shard,
                                        ProcessGroup& group, int64_t ignore_index = -100);

// The same per-token loss built from autograd ops: the row max over the group (detached: the loss
// does not depend on it), the local sum of exp and the owning rank's target logit each summed over
// the group by reduce_from_tp_region. Its backward is therefore differentiable again (double
// backward, e.g. Sophia-H's Hessian-vector products), at the cost of keeping more [N, V'/t] tensors.
at::Tensor vocab_parallel_cross_entropy_twice_differentiable(const at::Tensor& logits, const at::Tensor& targets,
                                                             const VocabShard& shard, ProcessGroup& group,
                                                             int64_t ignore_index = -100);

// Mean over the non-ignored tokens, as at::cross_entropy_loss(..., Mean) computes it; with
// twice_differentiable the per-token loss is the composite above.
at::Tensor vocab_parallel_cross_entropy_mean(const at::Tensor& logits, const at::Tensor& targets,
                                             const VocabShard& shard, ProcessGroup& group,
                                             int64_t ignore_index = -100, bool twice_differentiable = false);

}  // namespace strata::parallel
