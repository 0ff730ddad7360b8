#include "sparsity/select.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::sparsity {
namespace {

int64_t global_count(const at::Tensor& local_true, parallel::ProcessGroup& group, bool counted) {
  at::Tensor c = local_true.sum().to(at::kLong).reshape({1});
  if (!counted) c.zero_();
  group.all_reduce(c, parallel::ReduceOp::Sum)->wait();
  return c.item<int64_t>();
}

// Smallest x in (lo, hi] with count(x) >= target, given count(hi) >= target and count monotone.
template <typename Count>
int64_t bisect(int64_t lo, int64_t hi, int64_t target, const Count& count) {
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (count(mid) >= target) hi = mid;
    else lo = mid;
  }
  return hi;
}

}  // namespace

at::Tensor select_smallest(const at::Tensor& keys, const at::Tensor& index, int64_t k, int64_t index_bound,
                           parallel::ProcessGroup& group, bool counted) {
  if (keys.scalar_type() != at::kLong || index.scalar_type() != at::kLong || !keys.sizes().equals(index.sizes()))
    fail("sparsity select_smallest: keys and index must be int64 tensors of one shape (got {} {} and {} {})",
         c10::toString(keys.scalar_type()), keys.sizes(), c10::toString(index.scalar_type()), index.sizes());
  at::Tensor n = at::full({1}, counted ? keys.numel() : 0, keys.options());
  group.all_reduce(n, parallel::ReduceOp::Sum)->wait();
  const int64_t total = n.item<int64_t>();
  if (k < 0 || k > total) fail("sparsity select_smallest: k = {} is outside [0, {}] on group {}", k, total, group.name());
  if (k == 0) return at::zeros(keys.sizes(), keys.options().dtype(at::kBool));
  if (k == total) return at::ones(keys.sizes(), keys.options().dtype(at::kBool));
  at::Tensor mx = keys.numel() > 0 ? keys.max().reshape({1}) : at::zeros({1}, keys.options());
  group.all_reduce(mx, parallel::ReduceOp::Max)->wait();
  // The k-th smallest key T: the smallest key value with count(keys <= T) >= k.
  const int64_t thr = bisect(-1, mx.item<int64_t>(), k, [&](int64_t x) { return global_count(keys <= x, group, counted); });
  const at::Tensor below = keys < thr, tied = keys == thr;
  const int64_t rest = k - global_count(below, group, counted);
  // Among the tied entries, the `rest` with the smallest global indices: the smallest J with
  // count(tied & index < J) >= rest.
  const int64_t cut = bisect(0, index_bound, rest, [&](int64_t j) { return global_count(tied & (index < j), group, counted); });
  return below | (tied & (index < cut));
}

at::Tensor magnitude_keys(const at::Tensor& weight, const at::Tensor& pruned) {
  at::Tensor bits = weight.detach().abs().to(at::kFloat).contiguous().view(at::kInt).to(at::kLong).add_(1);
  return pruned.defined() ? bits.masked_fill_(pruned, 0) : bits;
}

}  // namespace strata::sparsity
