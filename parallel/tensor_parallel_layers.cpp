#include "parallel/tensor_parallel_layers.hpp"

#include <mutex>

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "core/error.hpp"
#include "models/blocks/vocab_projection.hpp"
#include "parallel/tensor_parallel_ops.hpp"

namespace strata::parallel {

TpRng::TpRng(uint64_t seed, c10::DeviceType device) : device_(device) {
  auto gen = at::globalContext().defaultGenerator(c10::Device(device));
  std::lock_guard<std::mutex> lock(gen.mutex());
  auto saved = gen.get_state();
  gen.set_current_seed(seed);
  region_state_ = gen.get_state();
  gen.set_state(saved);
}

void TpRng::enter() {
  if (inside_) return;
  auto gen = at::globalContext().defaultGenerator(c10::Device(device_));
  std::lock_guard<std::mutex> lock(gen.mutex());
  outside_state_ = gen.get_state();
  gen.set_state(region_state_);
  inside_ = true;
}

void TpRng::exit() {
  if (!inside_) return;
  auto gen = at::globalContext().defaultGenerator(c10::Device(device_));
  std::lock_guard<std::mutex> lock(gen.mutex());
  region_state_ = gen.get_state();
  gen.set_state(outside_state_);
  inside_ = false;
}

at::Tensor TpRng::state() const {
  if (inside_) fail("tensor parallelism: the dropout stream's state was read inside a region");
  return region_state_.clone();
}

void TpRng::set_state(const at::Tensor& state) {
  if (inside_) fail("tensor parallelism: the dropout stream's state was set inside a region");
  region_state_ = state.clone();
}

at::Tensor ColumnParallelComm::before(const at::Tensor& x) {
  auto& g = *ctx_->group;
  auto enter = [&] { return ctx_->sequence_parallel ? gather_from_sp_region(x, ctx_->seq_dim, g) : copy_to_tp_region(x, g); };
  if (!enters_region_) return enter();
  if (ctx_->rng) ctx_->rng->enter();
  const bool grad = at::GradMode::is_enabled();
  if (ctx_->entry_in.defined() && ctx_->entry_in.unsafeGetTensorImpl() == x.unsafeGetTensorImpl() &&
      ctx_->entry_grad == grad)
    return ctx_->entry_out;  // another column layer of this region on the same input: one entry
  auto out = enter();
  ctx_->entry_in = x, ctx_->entry_out = out, ctx_->entry_grad = grad;
  return out;
}

at::Tensor ColumnParallelComm::after(const at::Tensor& y, const at::Tensor& bias) {
  return bias.defined() ? y + bias : y;  // the bias is sharded like the output features
}

at::Tensor RowParallelComm::after(const at::Tensor& y, const at::Tensor& bias) {
  auto& g = *ctx_->group;
  auto out = ctx_->sequence_parallel ? reduce_scatter_to_sp_region(y, ctx_->seq_dim, g) : reduce_from_tp_region(y, g);
  if (ctx_->rng) ctx_->rng->exit();
  ctx_->entry_in = at::Tensor(), ctx_->entry_out = at::Tensor();  // the region ends
  return bias.defined() ? out + bias : out;  // replicated bias, added once after the reduce
}

at::Tensor VocabParallelEmbeddingComm::lookup(const at::Tensor& weight, const at::Tensor& ids, const at::Tensor& add) {
  auto& g = *ctx_->group;
  auto y = vocab_parallel_embedding(weight, ids, shard_, g, ctx_->sequence_parallel ? ctx_->seq_dim : -1);
  if (!add.defined()) return y;
  if (!ctx_->sequence_parallel) return y + add;
  // Sequence parallelism: y is this rank's chunk of the sequence, so it takes the same chunk of the
  // per-position values. narrow's backward pads with zeros: the replicated source (e.g. learned
  // positions) gets a partial gradient that TensorParallelPlan::sync_grads() sums over the group.
  const int64_t dim = ctx_->seq_dim - (y.dim() - add.dim());
  if (dim < 0 || add.size(dim) != y.size(ctx_->seq_dim) * g.size())
    fail("{}: values added to a sequence-parallel embedding have shape {}, which does not cover the {} positions of "
         "the sequence (rank {})", g.name(), add.sizes(), y.size(ctx_->seq_dim) * g.size(), g.rank());
  const int64_t len = y.size(ctx_->seq_dim);
  return y + add.narrow(dim, g.rank() * len, len);
}

at::Tensor VocabParallelEmbeddingComm::logits(const at::Tensor& weight, const at::Tensor& x) {
  auto& g = *ctx_->group;
  auto in = ctx_->sequence_parallel ? gather_from_sp_region(x, ctx_->seq_dim, g) : copy_to_tp_region(x, g);
  return models::vocab_projection(in, weight, models::vocab_align_for(in));  // local logits [.., V'/t]
}

}  // namespace strata::parallel
