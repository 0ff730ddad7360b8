#include "data/mlm.hpp"

#include <algorithm>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::data {
namespace {

// splitmix64 as a counter-based stream: one independent generator per (seed, sample index).
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t x = (state += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }
};

}  // namespace

MlmCollator::MlmCollator(const SpecialTokens& specials, int64_t vocab_size, MlmOptions opt)
    : specials_(specials.ids()), mask_id_(specials.mask), vocab_size_(vocab_size), opt_(opt) {
  if (mask_id_ < 0) fail("MLM collator: the tokenizer has no MASK token");
  if (opt.mask_prob < 0 || opt.mask_prob > 1 || opt.mask_token < 0 || opt.random_token < 0 ||
      opt.mask_token + opt.random_token > 1)
    fail("MLM collator: probabilities out of range (mask_prob {}, mask_token {}, random_token {})", opt.mask_prob,
         opt.mask_token, opt.random_token);
  if (vocab_size_ <= static_cast<int64_t>(specials_.size()))
    fail("MLM collator: vocabulary of {} has no non-special token", vocab_size_);
}

bool MlmCollator::special(int64_t id) const {
  return std::find(specials_.begin(), specials_.end(), id) != specials_.end();
}

MlmBatch MlmCollator::operator()(const at::Tensor& ids, const std::vector<uint64_t>& sample_indices) const {
  if (ids.dim() != 2 || ids.scalar_type() != at::kLong) fail("MLM collator: ids must be int64 [B, T]");
  const int64_t B = ids.size(0), T = ids.size(1);
  if (static_cast<int64_t>(sample_indices.size()) != B)
    fail("MLM collator: {} sample indices for a batch of {}", sample_indices.size(), B);
  at::Tensor in = ids.to(at::kCPU).contiguous().clone();
  at::Tensor labels = at::full({B, T}, kIgnore, at::kLong);
  int64_t* x = in.data_ptr<int64_t>();
  int64_t* y = labels.data_ptr<int64_t>();
  std::vector<int64_t> eligible;
  for (int64_t b = 0; b < B; ++b) {
    Rng rng{opt_.seed * 0xd1342543de82ef95ULL ^ (sample_indices[b] + 1) * 0x9e3779b97f4a7c15ULL};
    rng.next();
    int64_t* row = x + b * T;
    eligible.clear();
    for (int64_t t = 0; t < T; ++t)
      if (!special(row[t])) eligible.push_back(t);
    const double want = opt_.mask_prob * static_cast<double>(eligible.size());
    size_t k = static_cast<size_t>(want);
    if (rng.uniform() < want - static_cast<double>(k)) ++k;  // stochastic rounding: exact rate in expectation
    k = std::min(k, eligible.size());
    for (size_t c = 0; c < k; ++c) {  // partial Fisher-Yates: k distinct positions
      std::swap(eligible[c], eligible[c + rng.below(eligible.size() - c)]);
      const int64_t t = eligible[c];
      y[b * T + t] = row[t];
      const double u = rng.uniform();
      if (u < opt_.mask_token) {
        row[t] = mask_id_;
      } else if (u < opt_.mask_token + opt_.random_token) {
        int64_t r;
        do r = static_cast<int64_t>(rng.below(static_cast<uint64_t>(vocab_size_)));
        while (special(r));
        row[t] = r;
      }
    }
  }
  return {in.to(ids.device()), labels.to(ids.device())};
}

}  // namespace strata::data
