// The communication hooks that turn a models::Linear / models::Embedding into its tensor-parallel
// form once parallelize() has replaced its weights by this rank's shard:
//   ColumnParallelComm  f (or the sequence all-gather) on the input; local bias shard added.
//   RowParallelComm     g (or the sequence reduce-scatter) on the output; the replicated bias is
//                       added once, after the reduce.
//   VocabParallelEmbeddingComm  lookup of the local vocab rows + all-reduce; tied logits are the
//                       local vocab columns (f on the input, never gathered).
// Dropout inside a tensor-parallel region (between a column layer's input and the row layer's
// output, e.g. on attention probabilities) draws from a per-tp-rank generator stream (TpRng);
// outside, the default generator is used and stays identical on every tp rank.
#pragma once
#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "models/blocks/embedding.hpp"
#include "models/blocks/linear.hpp"
#include "parallel/process_group.hpp"
#include "parallel/vocab_parallel.hpp"

namespace strata::parallel {

// Swaps the default generator of `device` to this tp rank's own stream while inside a region.
class TpRng {
 public:
  TpRng(uint64_t seed, c10::DeviceType device);
  void enter();  // idempotent: Q, K and V all enter the same attention region
  void exit();
  // The region stream's generator state (between regions), for checkpoints: exact resume with dropout.
  at::Tensor state() const;
  void set_state(const at::Tensor& state);

 private:
  c10::DeviceType device_;
  at::Tensor region_state_, outside_state_;
  bool inside_ = false;
};

// What every hook of one model shares.
struct TpContext {
  std::shared_ptr<ProcessGroup> group;
  bool sequence_parallel = false;  // activations outside regions are split along seq_dim
  int64_t seq_dim = 1;             // [B, T, d]
  std::shared_ptr<TpRng> rng;      // null: dropout in regions uses the default generator
  // The region entry (f, or the sequence all-gather) of the current region: column layers that read
  // the same input (Q, K and V; SwiGLU's gate and up) share one entry, so the backward all-reduce
  // (and the sequence-parallel forward all-gather) runs once per region, as in Megatron's fused QKV.
  // Cleared at the region's exit (the row layer).
  at::Tensor entry_in, entry_out;
  bool entry_grad = false;
};

class ColumnParallelComm final : public models::LinearComm {
 public:
  explicit ColumnParallelComm(std::shared_ptr<TpContext> ctx, bool enters_region = true)
      : ctx_(std::move(ctx)), enters_region_(enters_region) {}
  at::Tensor before(const at::Tensor& x) override;
  at::Tensor after(const at::Tensor& y, const at::Tensor& bias) override;

 private:
  std::shared_ptr<TpContext> ctx_;
  bool enters_region_;  // false for the LM head: its output leaves the model as local logits
};

class RowParallelComm final : public models::LinearComm {
 public:
  explicit RowParallelComm(std::shared_ptr<TpContext> ctx) : ctx_(std::move(ctx)) {}
  at::Tensor after(const at::Tensor& y, const at::Tensor& bias) override;

 private:
  std::shared_ptr<TpContext> ctx_;
};

class VocabParallelEmbeddingComm final : public models::EmbeddingComm {
 public:
  VocabParallelEmbeddingComm(std::shared_ptr<TpContext> ctx, VocabShard shard)
      : ctx_(std::move(ctx)), shard_(shard) {}
  at::Tensor lookup(const at::Tensor& weight, const at::Tensor& ids, const at::Tensor& add) override;
  at::Tensor logits(const at::Tensor& weight, const at::Tensor& x) override;

 private:
  std::shared_ptr<TpContext> ctx_;
  VocabShard shard_;
};

}  // namespace strata::parallel
