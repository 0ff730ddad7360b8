// Training a SentencePiece model (BPE or unigram) from raw text, for `strata prep --train-tokenizer`.
// Normalization is the identity and byte fallback is on, so decode(encode(text)) == text for any
// UTF-8 text (characters the model has no piece for are spelled as bytes).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/sentencepiece.hpp"

namespace strata::data {

struct TokenizerTrainOptions {
  int64_t vocab_size = 8000;
  std::string model_type = "bpe";  // bpe | unigram
  SpecialPieces specials;
  int64_t threads = 0;               // 0 = all cores
  int64_t max_sentences = 2000000;   // lines sampled for training
};

// Trains on the lines of `docs` (empty lines skipped) and returns the serialized .model bytes.
std::string train_sentencepiece(const std::vector<std::string_view>& docs, const TokenizerTrainOptions& opt);

}  // namespace strata::data
