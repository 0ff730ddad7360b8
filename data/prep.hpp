// `strata prep`: text files -> a tokenized dataset directory (train/val shards + manifest.yaml).
#pragma once
#include <string>
#include <vector>

namespace strata::data {

struct PrepOptions {
  std::vector<std::string> inputs;  // text files or directories of text files
  std::string out;                  // dataset directory to create
  std::string tokenizer = "byte";
  int64_t val_every = 20;           // every N-th document goes to validation (20 => 95/5 split)
  int64_t shard_tokens = 64 << 20;  // tokens per shard
  bool force = false;
};

struct PrepResult {
  bool skipped = false;  // inputs unchanged since the last prep
  uint64_t train_tokens = 0, val_tokens = 0, docs = 0;
};

PrepResult prep_dataset(const PrepOptions& opt);

}  // namespace strata::data
