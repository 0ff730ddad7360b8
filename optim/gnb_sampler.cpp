#include "optim/gnb_sampler.hpp"

#include <algorithm>
#include <limits>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"

namespace strata::optim {
namespace {

constexpr int64_t kMask32 = 0xFFFFFFFFLL;

// (h * c) mod 2^32 for h, c in [0, 2^32) without leaving int64: c is split into 16-bit halves.
at::Tensor mul32(const at::Tensor& h, int64_t c) {
  auto lo = h * (c & 0xFFFF);
  auto hi = at::bitwise_left_shift(at::bitwise_and(h * (c >> 16), 0xFFFF), 16);
  return at::bitwise_and(lo + hi, kMask32);
}

// murmur3's 32-bit finalizer: a bijection of [0, 2^32) with full avalanche.
at::Tensor fmix32(at::Tensor h) {
  h = at::bitwise_xor(h, at::bitwise_right_shift(h, 16));
  h = mul32(h, 0x85ebca6bLL);
  h = at::bitwise_xor(h, at::bitwise_right_shift(h, 13));
  h = mul32(h, 0xc2b2ae35LL);
  return at::bitwise_xor(h, at::bitwise_right_shift(h, 16));
}

}  // namespace

uint64_t draw_refresh_seed(at::Generator& gen) {
  auto s = at::randint(std::numeric_limits<int64_t>::max(), {1}, gen, at::TensorOptions().dtype(at::kLong));
  return static_cast<uint64_t>(s.item<int64_t>());
}

at::Tensor counter_hash32(uint64_t seed, const at::Tensor& counter) {
  const auto k0 = static_cast<int64_t>(seed & 0xFFFFFFFFULL), k1 = static_cast<int64_t>(seed >> 32);
  auto h = fmix32(at::bitwise_xor(at::bitwise_and(counter, kMask32), k0));
  auto hi = at::bitwise_xor(at::bitwise_right_shift(counter, 32), k1);  // < 2^32 for counters < 2^63
  return fmix32(at::bitwise_and(h + mul32(hi, 0x9E3779B9LL), kMask32));
}

at::Tensor gumbel_noise(uint64_t seed, int64_t first_row, int64_t rows, int64_t begin, int64_t n, int64_t vocab,
                        at::Device device) {
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(device);
  auto counter = (at::arange(first_row, first_row + rows, i64) * vocab).unsqueeze(1) + at::arange(begin, begin + n, i64);
  auto h = counter_hash32(seed, counter);
  auto u = (at::bitwise_right_shift(h, 8).to(at::kDouble) + 0.5) / 16777216.0;  // (0, 1), 24 bits
  return -at::log(-at::log(u));
}

at::Tensor sample_labels(const at::Tensor& logits, uint64_t seed, int64_t first_row, const VocabSplit* split) {
  torch::NoGradGuard no_grad;
  const int64_t n = logits.size(-1);
  auto flat = logits.detach().reshape({-1, n});
  const int64_t rows = flat.size(0);
  const int64_t begin = split ? split->shard.start : 0;
  const int64_t vocab = split ? split->shard.vocab : n;
  if (split && n != split->shard.local())
    fail("sample_labels: logits have {} columns but the vocabulary shard [{}, {}) has {}", n, split->shard.start,
         split->shard.end, split->shard.local());
  const int64_t real = std::clamp<int64_t>(vocab - begin, 0, n);  // columns that are real ids
  auto dd = at::TensorOptions().dtype(at::kDouble).device(flat.device());
  auto best = at::full({rows}, -std::numeric_limits<double>::infinity(), dd);
  auto id = at::full({rows}, std::numeric_limits<int64_t>::max(), dd.dtype(at::kLong));
  if (real > 0) {
    const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / real);  // bounded [chunk, real] temporaries
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t cr = std::min(chunk, rows - r0);
      auto score = flat.narrow(0, r0, cr).narrow(1, 0, real).to(at::kDouble) +
                   gumbel_noise(seed, first_row + r0, cr, begin, real, vocab, flat.device());
      auto [v, i] = score.max(1);
      best.narrow(0, r0, cr).copy_(v);
      id.narrow(0, r0, cr).copy_(i + begin);
    }
  }
  if (split && split->group && split->group->size() > 1) {
    auto top = best.clone();
    split->group->all_reduce(top, parallel::ReduceOp::Max)->wait();
    id = at::where(best == top, id, std::numeric_limits<int64_t>::max()).contiguous();
    split->group->all_reduce(id, parallel::ReduceOp::Min)->wait();  // ties across shards: the smallest id
  }
  auto sizes = logits.sizes().vec();
  sizes.pop_back();
  return id.reshape(sizes);
}

at::Tensor sampled_label_loss(const at::Tensor& logits, uint64_t seed, int64_t first_row, const VocabSplit* split) {
  auto labels = sample_labels(logits, seed, first_row, split);
  const int64_t n = logits.size(-1);
  if (split && split->group)
    return parallel::vocab_parallel_cross_entropy_mean(logits.to(at::kFloat), labels, split->shard, *split->group);
  return at::cross_entropy_loss(logits.reshape({-1, n}).to(at::kFloat), labels.reshape({-1}));
}

at::Tensor GnbLabels::loss(const at::Tensor& logits, int64_t micro) const {
  const int64_t rows = logits.numel() / logits.size(-1);
  return sampled_label_loss(logits, seed, (micro * dp_size + dp_rank) * rows, split);
}

}  // namespace strata::optim
