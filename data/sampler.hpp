// Deterministic, resumable sampling of training sequences.
//
// The split's token stream is cut into W = (n_tokens - 1) / T windows of T + 1 tokens (window j
// starts at token j*T, so inputs and targets tile the stream). Global sample index i maps to
// epoch e = i / W and window perm_e(i % W), where perm_e is a keyed bijection of [0, W) (a Feistel
// network with cycle walking) seeded by (seed, e). So the sequence for index i is a pure function of
// (seed, i): no state to save beyond the step, no repeats within an epoch, and any data-parallel
// degree sees the same global batch.
#pragma once
#include <cstdint>
#include <vector>

namespace strata::data {

class WindowPermutation {
 public:
  WindowPermutation(uint64_t n, uint64_t key);
  uint64_t operator()(uint64_t i) const;

 private:
  uint64_t n_, key_;
  int half_bits_;
  uint64_t half_mask_;
};

class SequenceSampler {
 public:
  SequenceSampler(uint64_t n_tokens, int64_t seq_len, uint64_t seed);
  uint64_t windows() const { return windows_; }
  // First token of the window used for global sample index i.
  uint64_t start_of(uint64_t i) const;

 private:
  uint64_t windows_;
  int64_t seq_len_;
  uint64_t seed_;
};

// Global sample indices of one micro-batch: step s's global batch is the index range
// [s*G, (s+1)*G) with G = micro_batch * dp * grad_accum; micro-step a of dp rank r takes the
// contiguous slice starting at s*G + (a*dp + r)*micro_batch.
std::vector<uint64_t> micro_batch_indices(int64_t step, int64_t micro_step, int64_t micro_batch, int64_t grad_accum,
                                          int64_t dp_rank, int64_t dp_size);

}  // namespace strata::data
