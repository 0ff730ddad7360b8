// Sophia-G's label sampler (specs/sophia.md §2-3): one label per position drawn from the model's
// own softmax by Gumbel-max, with noise that is a pure function of (refresh seed, global position,
// global vocabulary id). So the labels do not depend on how the batch or the vocabulary is split:
// a data-parallel rank draws the noise of its own rows, a tensor-parallel rank the noise of its
// vocabulary shard, takes its local max and index, and two all-reduces over the tp group (max of
// the perturbed logit, then the smallest index attaining it) pick the label without ever
// gathering full logits. tp = 1 runs the same code without the reductions, hence the same labels
// (up to exact floating ties of the perturbed logits, which have probability ~0).
//
// Noise: u = (h + 0.5) / 2^24 from a 24-bit counter hash h of (seed, position * V + id), then
// g = -log(-log u) in fp64; label = argmax_id (logit_id + g_id). Computed in row chunks so the
// [rows, V] temporaries stay bounded.
#pragma once
#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "parallel/process_group.hpp"
#include "parallel/vocab_parallel.hpp"

namespace strata::optim {

// The vocabulary layout of vocab-parallel logits: this rank's columns are the padded ids
// [shard.start, shard.end) (ids >= shard.vocab are padding, never sampled); `group` (the tp group)
// holds the other shards.
struct VocabSplit {
  parallel::VocabShard shard;
  parallel::ProcessGroup* group = nullptr;
};

// One refresh's seed from the refresh generator (the same on every rank that holds the same state).
uint64_t draw_refresh_seed(at::Generator& gen);

// The 32-bit counter hash behind the noise: values in [0, 2^32) (int64, like `counter`), a pure
// function of (seed, counter) for counters in [0, 2^63). Also keys Sophia-H's probes (optim/hessian.hpp).
at::Tensor counter_hash32(uint64_t seed, const at::Tensor& counter);

// Gumbel noise [rows, n] (fp64, on `device`) for positions [first_row, first_row + rows) and global
// ids [begin, begin + n) of a vocabulary of `vocab` ids.
at::Tensor gumbel_noise(uint64_t seed, int64_t first_row, int64_t rows, int64_t begin, int64_t n, int64_t vocab,
                        at::Device device);

// Labels (int64, shaped like logits without the last dim) for logits [..., n] whose rows are global
// positions first_row, first_row + 1, ...; `split` null = the whole vocabulary on this rank.
at::Tensor sample_labels(const at::Tensor& logits, uint64_t seed, int64_t first_row, const VocabSplit* split = nullptr);

// Mean cross-entropy (fp32) of logits against sample_labels; differentiable in logits. With a split
// it is the vocab-parallel cross-entropy (parallel/vocab_parallel.hpp), the same value on every tp rank.
at::Tensor sampled_label_loss(const at::Tensor& logits, uint64_t seed, int64_t first_row,
                              const VocabSplit* split = nullptr);

// The label positions of one refresh: micro-batch a of dp rank r covers global rows
// (a * dp_size + r) * rows ... of the refresh's global batch (rows = positions per micro-batch), the
// numbering data::micro_batch_indices gives the training batch, so any dp degree draws the same labels.
struct GnbLabels {
  uint64_t seed = 0;
  int64_t dp_rank = 0, dp_size = 1;
  const VocabSplit* split = nullptr;
  at::Tensor loss(const at::Tensor& logits, int64_t micro) const;
};

}  // namespace strata::optim
