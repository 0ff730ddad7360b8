// A prepared dataset: a directory with manifest.yaml and token shards per split (train, val).
// TokenDataset presents one split's shards as a single token stream.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/shard.hpp"

namespace strata::data {

struct ShardEntry {
  std::string file;  // relative to the dataset directory
  uint64_t tokens = 0;
  uint64_t docs = 0;
  uint32_t crc32c = 0;
};

struct DatasetManifest {
  std::string tokenizer;  // tokenizer identity (kind + model checksum + specials)
  std::string tokenizer_model;  // "tokenizer.model" in the dataset directory (SentencePiece), else empty
  int64_t vocab_size = 0;
  uint64_t input_bytes = 0;  // bytes of text tokenized
  std::string fingerprint;  // of the inputs and prep options; unchanged input => nothing to do
  std::vector<ShardEntry> train, val;

  static DatasetManifest load(const std::filesystem::path& dir);
  std::string to_yaml() const;
};

class Tokenizer;
// The tokenizer a prepared dataset was written with, rebuilt from its manifest (and tokenizer.model);
// include data/tokenizer.hpp to use it.
std::unique_ptr<Tokenizer> load_dataset_tokenizer(const std::filesystem::path& dir);

class TokenDataset {
 public:
  TokenDataset(const std::filesystem::path& dir, const std::string& split);
  uint64_t n_tokens() const { return total_; }
  const DatasetManifest& manifest() const { return manifest_; }
  // Copies tokens [start, start + n) of the concatenated split into out.
  void read(uint64_t start, uint64_t n, int64_t* out) const;

 private:
  DatasetManifest manifest_;
  std::vector<std::unique_ptr<ShardReader>> shards_;
  std::vector<uint64_t> starts_;  // global offset of each shard
  uint64_t total_ = 0;
};

}  // namespace strata::data
