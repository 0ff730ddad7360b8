#include "data/dataset.hpp"

#include <algorithm>

#include <yaml-cpp/yaml.h>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "data/tokenizer.hpp"

namespace strata::data {
namespace fs = std::filesystem;

DatasetManifest DatasetManifest::load(const fs::path& dir) {
  fs::path file = dir / "manifest.yaml";
  if (!fs::exists(file)) fail("dataset '{}' has no manifest.yaml: prepare it with `strata prep`", dir.string());
  DatasetManifest m;
  try {
    YAML::Node root = YAML::LoadFile(file.string());
    if (root["format"].as<std::string>("") != "strata-dataset-v1")
      fail("{}: unknown dataset format '{}' (expected strata-dataset-v1)", file.string(), root["format"].as<std::string>(""));
    m.tokenizer = root["tokenizer"].as<std::string>();
    m.tokenizer_model = root["tokenizer_model"].as<std::string>("");
    m.vocab_size = root["vocab_size"].as<int64_t>();
    m.input_bytes = root["input_bytes"].as<uint64_t>(0);
    m.fingerprint = root["fingerprint"].as<std::string>("");
    for (const char* split : {"train", "val"}) {
      auto& dst = std::string(split) == "train" ? m.train : m.val;
      for (const auto& s : root["splits"][split]) {
        ShardEntry e{s["file"].as<std::string>(), s["tokens"].as<uint64_t>(), s["docs"].as<uint64_t>(),
                     s["crc32c"].as<uint32_t>()};
        if (e.file.find("..") != std::string::npos || fs::path(e.file).is_absolute())
          fail("{}: shard path '{}' leaves the dataset directory", file.string(), e.file);
        dst.push_back(e);
      }
    }
  } catch (const YAML::Exception& e) {
    fail("{}: malformed dataset manifest: {}", file.string(), e.what());
  }
  return m;
}

std::string DatasetManifest::to_yaml() const {
  YAML::Emitter e;
  e << YAML::BeginMap << YAML::Key << "format" << YAML::Value << "strata-dataset-v1";
  e << YAML::Key << "tokenizer" << YAML::Value << tokenizer;
  if (!tokenizer_model.empty()) e << YAML::Key << "tokenizer_model" << YAML::Value << tokenizer_model;
  e << YAML::Key << "vocab_size" << YAML::Value << vocab_size;
  e << YAML::Key << "input_bytes" << YAML::Value << input_bytes;
  e << YAML::Key << "fingerprint" << YAML::Value << fingerprint;
  e << YAML::Key << "splits" << YAML::Value << YAML::BeginMap;
  for (const auto* split : {"train", "val"}) {
    const auto& src = std::string(split) == "train" ? train : val;
    e << YAML::Key << split << YAML::Value << YAML::BeginSeq;
    for (const auto& s : src)
      e << YAML::Flow << YAML::BeginMap << YAML::Key << "file" << YAML::Value << s.file << YAML::Key << "tokens"
        << YAML::Value << s.tokens << YAML::Key << "docs" << YAML::Value << s.docs << YAML::Key << "crc32c"
        << YAML::Value << s.crc32c << YAML::EndMap;
    e << YAML::EndSeq;
  }
  e << YAML::EndMap << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

std::unique_ptr<Tokenizer> load_dataset_tokenizer(const fs::path& dir) {
  return make_tokenizer(DatasetManifest::load(dir).tokenizer, dir);
}

TokenDataset::TokenDataset(const fs::path& dir, const std::string& split) : manifest_(DatasetManifest::load(dir)) {
  const auto& entries = split == "train" ? manifest_.train : manifest_.val;
  if (split != "train" && split != "val") fail("unknown split '{}' (train or val)", split);
  for (const auto& e : entries) {
    auto reader = std::make_unique<ShardReader>(dir / e.file);
    if (reader->info().n_tokens != e.tokens || reader->info().crc32c != e.crc32c)
      fail("shard '{}' does not match the manifest (tokens {} vs {}, crc {:08x} vs {:08x}): re-run `strata prep`",
           (dir / e.file).string(), reader->info().n_tokens, e.tokens, reader->info().crc32c, e.crc32c);
    starts_.push_back(total_);
    total_ += e.tokens;
    shards_.push_back(std::move(reader));
  }
  if (total_ == 0) fail("dataset '{}' has no tokens in split '{}'", dir.string(), split);
}

void TokenDataset::read(uint64_t start, uint64_t n, int64_t* out) const {
  if (start + n > total_) fail("dataset read [{}, {}) past the end ({} tokens)", start, start + n, total_);
  size_t s = std::upper_bound(starts_.begin(), starts_.end(), start) - starts_.begin() - 1;
  while (n > 0) {
    uint64_t local = start - starts_[s];
    uint64_t take = std::min<uint64_t>(n, shards_[s]->info().n_tokens - local);
    shards_[s]->read(local, take, out);
    out += take;
    start += take;
    n -= take;
    ++s;
  }
}

}  // namespace strata::data
