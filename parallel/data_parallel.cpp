#include "parallel/data_parallel.hpp"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "core/error.hpp"

namespace strata::parallel {
namespace {

struct GradReadyHook final : torch::autograd::PostAccumulateGradHook {
  GradReadyHook(DataParallel* dp, size_t i) : dp_(dp), i_(i) {}
  void operator()(const torch::autograd::Variable&) override { dp_->on_grad_ready(i_); }
  DataParallel* dp_;
  size_t i_;
};

}  // namespace

DataParallel::DataParallel(std::vector<std::pair<std::string, at::Tensor>> params, std::shared_ptr<ProcessGroup> dp,
                           DataParallelOptions opts)
    : params_(std::move(params)), group_(std::move(dp)), opts_(opts) {
  if (params_.empty()) fail("data parallel: no parameters to synchronize");
  if (opts_.bucket_mb <= 0) fail("parallel.bucket_mb = {} must be positive", opts_.bucket_mb);
  const int64_t n = group_->size();
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(opts_.bucket_mb * 1024 * 1024));
  bucket_of_.assign(params_.size(), 0);
  slot_of_.assign(params_.size(), 0);
  auto dtype = params_.front().second.scalar_type();
  auto device = params_.front().second.device();
  GradBucket cur;
  auto close = [&] {
    if (cur.params.empty()) return;
    cur.padded = (cur.numel + n - 1) / n * n;
    auto o = at::TensorOptions().dtype(dtype).device(device);
    cur.flat = at::zeros({cur.padded}, o);
    if (opts_.shard_grads) cur.shard = at::zeros({cur.padded / n}, o);
    buckets_.push_back(std::move(cur));
    cur = GradBucket{};
  };
  for (size_t k = params_.size(); k-- > 0;) {  // reverse registration order
    const auto& [name, p] = params_[k];
    if (!p.requires_grad()) fail("data parallel: parameter '{}' does not require grad", name);
    if (p.scalar_type() != dtype || p.device() != device)
      fail("data parallel: parameter '{}' is {} on {}, the others {} on {}", name, c10::toString(p.scalar_type()),
           p.device().str(), c10::toString(dtype), device.str());
    const int64_t bytes = p.numel() * p.element_size();
    if (!cur.params.empty() && (cur.numel * p.element_size() + bytes > cap)) close();
    bucket_of_[k] = buckets_.size();
    slot_of_[k] = cur.params.size();
    cur.params.push_back(k);
    cur.offsets.push_back(cur.numel);
    cur.numel += p.numel();
  }
  close();
  pending_.assign(buckets_.size(), 0);
  seen_.assign(params_.size(), 0);
  has_grad_.assign(params_.size(), 1);
  works_.assign(buckets_.size(), nullptr);
  for (size_t k = 0; k < params_.size(); ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k].second, std::make_unique<GradReadyHook>(this, k));
  for (auto& b : buckets_) {
    const double bytes = static_cast<double>(b.padded) * b.flat.element_size();
    stats_.bytes_per_step += bytes;
    // Ring algorithms: all-reduce sends 2(n-1)/n of the payload per rank, reduce-scatter (n-1)/n.
    stats_.wire_bytes_per_step += bytes * (n - 1) / n * (opts_.shard_grads ? 1.0 : 2.0);
  }
}

DataParallel::~DataParallel() {
  for (auto& [_, p] : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void DataParallel::set_sync(bool sync) {
  sync_ = sync;
  if (!sync || armed_) return;
  armed_ = true;
  std::fill(seen_.begin(), seen_.end(), 0);
  std::fill(has_grad_.begin(), has_grad_.end(), 1);
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = static_cast<int64_t>(buckets_[b].params.size());
  works_.assign(buckets_.size(), nullptr);
  next_launch_ = 0;
}

void DataParallel::on_grad_ready(size_t i) {
  if (!sync_ || !armed_ || seen_[i]) return;
  seen_[i] = 1;
  const size_t b = bucket_of_[i];
  auto& bk = buckets_[b];
  const auto& p = params_[i].second;
  {
    torch::NoGradGuard no_grad;
    bk.flat.narrow(0, bk.offsets[slot_of_[i]], p.numel()).copy_(p.grad().reshape({-1}));
  }
  --pending_[b];
  if (opts_.overlap) launch_ready();
}

void DataParallel::launch_ready() {
  while (next_launch_ < buckets_.size() && pending_[next_launch_] == 0) launch(next_launch_++);
}

void DataParallel::launch(size_t b) {
  auto& bk = buckets_[b];
  if (opts_.shard_grads) {
    works_[b] = group_->reduce_scatter_flat(bk.shard, bk.flat, ReduceOp::Avg);
  } else {
    works_[b] = group_->all_reduce(bk.flat, ReduceOp::Avg);
  }
}

void DataParallel::finish() {
  if (!sync_ || !armed_) fail("data parallel: finish() needs set_sync(true) before the final micro-batch's backward");
  torch::NoGradGuard no_grad;
  // Parameters the graph did not reach contribute zeros (or their existing gradient).
  for (size_t i = 0; i < params_.size(); ++i) {
    if (seen_[i]) continue;
    auto& bk = buckets_[bucket_of_[i]];
    auto slice = bk.flat.narrow(0, bk.offsets[slot_of_[i]], params_[i].second.numel());
    const auto& g = params_[i].second.grad();
    if (g.defined()) slice.copy_(g.reshape({-1}));
    else slice.zero_();
    has_grad_[i] = g.defined();
    seen_[i] = 1;
    --pending_[bucket_of_[i]];
  }
  launch_ready();
  if (next_launch_ != buckets_.size()) fail("data parallel: {} buckets were never started", buckets_.size() - next_launch_);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& w : works_) w->wait();
  stats_.wait_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++stats_.steps;
  if (!opts_.shard_grads) {
    for (auto& bk : buckets_)
      for (size_t s = 0; s < bk.params.size(); ++s) {
        auto& p = params_[bk.params[s]].second;
        auto reduced = bk.flat.narrow(0, bk.offsets[s], p.numel()).view(p.sizes());
        // A parameter the graph never reaches keeps no gradient, as in one process (the graph is
        // the same on every rank, so it is unused everywhere).
        if (p.grad().defined()) p.mutable_grad().copy_(reduced);
      }
  }
  armed_ = false;  // backward passes outside a training step (e.g. a curvature refresh) stay local
}

}  // namespace strata::parallel
