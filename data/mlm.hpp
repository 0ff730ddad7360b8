// The BERT masked-language-model collator. For each sequence, 15% of the positions that do not hold
// a special token (EOS, BOS, PAD, MASK, CLS, SEP) are chosen (the count is n * 0.15 rounded up or
// down at random, so the rate is exact in expectation); of those, 80% become [MASK], 10% a random
// non-special token, 10% stay unchanged. labels hold the original token at chosen positions and
// -100 (ignored by cross-entropy) elsewhere. Every choice is a pure function of (seed, sample index).
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/tokenizer.hpp"

namespace strata::data {

struct MlmOptions {
  double mask_prob = 0.15;     // share of non-special positions chosen
  double mask_token = 0.8;     // of the chosen: replaced by [MASK]
  double random_token = 0.1;   // of the chosen: replaced by a random non-special token (rest unchanged)
  uint64_t seed = 0;
};

struct MlmBatch {
  at::Tensor input_ids;  // int64 [B, T]
  at::Tensor labels;     // int64 [B, T], -100 where not chosen
};

class MlmCollator {
 public:
  static constexpr int64_t kIgnore = -100;
  // vocab_size: the tokenizer's (random replacements are drawn from [0, vocab_size) minus specials).
  MlmCollator(const SpecialTokens& specials, int64_t vocab_size, MlmOptions opt = {});
  MlmCollator(const Tokenizer& tok, MlmOptions opt = {}) : MlmCollator(tok.specials(), tok.vocab_size(), opt) {}

  // ids: int64 [B, T] (e.g. Batch::inputs); sample_indices: the global sample index of each row.
  MlmBatch operator()(const at::Tensor& ids, const std::vector<uint64_t>& sample_indices) const;

 private:
  bool special(int64_t id) const;
  std::vector<int32_t> specials_;
  int32_t mask_id_;
  int64_t vocab_size_;
  MlmOptions opt_;
};

}  // namespace strata::data
