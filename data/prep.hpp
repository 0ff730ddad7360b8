// `strata prep`: text files, directories or JSONL -> a tokenized dataset directory (train/val shards,
// manifest.yaml, and tokenizer.model for SentencePiece). Tokenization runs on all cores; the output
// appears atomically; unchanged input (and options) means nothing to do.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::data {

struct PrepOptions {
  std::vector<std::string> inputs;  // text files, directories, or *.jsonl / *.ndjson files
  std::string out;                  // dataset directory to create
  std::string tokenizer = "byte";   // byte | sentencepiece
  std::string tokenizer_model;      // a SentencePiece .model to load (tokenizer = sentencepiece)
  bool train_tokenizer = false;     // train a SentencePiece model on the inputs (implies sentencepiece)
  int64_t vocab_size = 8000;        // for --train-tokenizer
  std::string model_type = "bpe";   // for --train-tokenizer: bpe | unigram
  std::string specials;             // SentencePiece special pieces, "bos=<s>,eos=</s>,..." over the defaults
  std::string jsonl_field = "text";
  int64_t val_every = 20;           // every N-th document goes to validation (20 => 95/5 split)
  int64_t shard_tokens = 64 << 20;  // tokens per shard
  int64_t threads = 0;              // tokenizer threads; 0 = all cores
  bool force = false;
};

struct PrepResult {
  bool skipped = false;  // inputs unchanged since the last prep
  uint64_t train_tokens = 0, val_tokens = 0, docs = 0, bytes = 0;
  double seconds = 0;  // reading + tokenizing + writing (tokenizer training excluded)
  double mb_per_s() const { return seconds > 0 ? bytes / 1e6 / seconds : 0; }
  double tokens_per_s() const { return seconds > 0 ? (train_tokens + val_tokens) / seconds : 0; }
};

PrepResult prep_dataset(const PrepOptions& opt);

}  // namespace strata::data
