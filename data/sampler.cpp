#include "data/sampler.hpp"

#include "core/error.hpp"

namespace strata::data {
namespace {

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

WindowPermutation::WindowPermutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
  int bits = 1;
  while ((1ULL << bits) < n) ++bits;
  half_bits_ = (bits + 1) / 2;
  half_mask_ = (1ULL << half_bits_) - 1;
}

uint64_t WindowPermutation::operator()(uint64_t i) const {
  if (i >= n_) fail("WindowPermutation: index {} out of range [0, {})", i, n_);
  uint64_t x = i;
  do {  // cycle-walk until the Feistel output lands inside [0, n)
    uint64_t l = x >> half_bits_, r = x & half_mask_;
    for (uint64_t round = 0; round < 4; ++round) {
      uint64_t f = mix(r ^ mix(key_ + round)) & half_mask_;
      uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    x = (l << half_bits_) | r;
  } while (x >= n_);
  return x;
}

SequenceSampler::SequenceSampler(uint64_t n_tokens, int64_t seq_len, uint64_t seed)
    : windows_(n_tokens > 1 ? (n_tokens - 1) / seq_len : 0), seq_len_(seq_len), seed_(seed) {
  if (windows_ == 0)
    fail("dataset has {} tokens, too few for one sequence of length {} (+1 target)", n_tokens, seq_len);
}

uint64_t SequenceSampler::start_of(uint64_t i) const {
  uint64_t epoch = i / windows_;
  WindowPermutation perm(windows_, mix(seed_ ^ mix(epoch + 1)));
  return perm(i % windows_) * static_cast<uint64_t>(seq_len_);
}

std::vector<uint64_t> micro_batch_indices(int64_t step, int64_t micro_step, int64_t micro_batch, int64_t grad_accum,
                                          int64_t dp_rank, int64_t dp_size) {
  uint64_t global = static_cast<uint64_t>(micro_batch * dp_size * grad_accum);
  uint64_t first = step * global + static_cast<uint64_t>((micro_step * dp_size + dp_rank) * micro_batch);
  std::vector<uint64_t> out(micro_batch);
  for (int64_t k = 0; k < micro_batch; ++k) out[k] = first + k;
  return out;
}

}  // namespace strata::data
