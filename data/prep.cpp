#include "data/prep.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/crc32c.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "data/dataset.hpp"
#include "data/shard.hpp"
#include "data/tokenizer.hpp"

namespace strata::data {
namespace fs = std::filesystem;
namespace {

std::vector<fs::path> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<fs::path> files;
  for (const auto& in : inputs) {
    if (!fs::exists(in)) fail("prep: input '{}' does not exist", in);
    if (fs::is_directory(in)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file()) found.push_back(e.path());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.emplace_back(in);
    }
  }
  if (files.empty()) fail("prep: no input files found in {}", fmt::join(inputs, ", "));
  return files;
}

std::string fingerprint(const std::vector<fs::path>& files, const PrepOptions& opt, const std::string& tok) {
  std::string key = fmt::format("{}|{}|{}", tok, opt.val_every, opt.shard_tokens);
  for (const auto& f : files)
    key += fmt::format("|{}:{}:{}", fs::absolute(f).string(), fs::file_size(f),
                       fs::last_write_time(f).time_since_epoch().count());
  return fmt::format("{:08x}", crc32c(key.data(), key.size()));
}

// Splits text into documents at blank lines (two or more consecutive newlines). A block shorter
// than 64 bytes (a heading such as "Genesis 1") is joined to the block after it.
std::vector<std::string_view> split_documents(std::string_view text) {
  constexpr size_t kMinDoc = 64;
  std::vector<std::string_view> docs;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == '\n' || text[i] == '\r')) ++i;
    if (i >= text.size()) break;
    size_t end = text.find("\n\n", i);
    while (end != std::string_view::npos && end - i < kMinDoc) end = text.find("\n\n", end + 2);
    if (end == std::string_view::npos) end = text.size();
    docs.push_back(text.substr(i, end - i));
    i = end;
  }
  return docs;
}

struct SplitWriter {
  fs::path dir;
  std::string name;
  int64_t vocab, shard_tokens;
  std::vector<int32_t> tokens;
  std::vector<uint64_t> doc_starts;
  std::vector<ShardEntry> entries;

  void add(const std::vector<int32_t>& doc, int32_t eos) {
    doc_starts.push_back(tokens.size());
    tokens.insert(tokens.end(), doc.begin(), doc.end());
    tokens.push_back(eos);
    if (static_cast<int64_t>(tokens.size()) >= shard_tokens) flush();
  }
  void flush() {
    if (tokens.empty()) return;
    std::string file = fmt::format("{}_{:05d}.bin", name, entries.size());
    auto info = write_shard(dir / file, tokens, doc_starts, vocab);
    entries.push_back({file, info.n_tokens, info.n_docs, info.crc32c});
    tokens.clear();
    doc_starts.clear();
  }
  uint64_t total() const {
    uint64_t t = 0;
    for (const auto& e : entries) t += e.tokens;
    return t;
  }
};

}  // namespace

PrepResult prep_dataset(const PrepOptions& opt) {
  if (opt.out.empty()) fail("prep: --out is required");
  if (opt.val_every < 2) fail("prep: val_every must be >= 2, got {}", opt.val_every);
  auto files = expand_inputs(opt.inputs);
  auto tok = make_tokenizer(opt.tokenizer);
  std::string fp = fingerprint(files, opt, tok->identity());
  fs::path out(opt.out);
  if (!opt.force && fs::exists(out / "manifest.yaml")) {
    try {
      if (DatasetManifest::load(out).fingerprint == fp) {
        spdlog::info("prep: '{}' is up to date (inputs unchanged), nothing to do", opt.out);
        return {.skipped = true};
      }
    } catch (const Error&) {
      // an unreadable manifest is rebuilt below
    }
  }
  fs::path tmp = out;
  tmp += fmt::format(".tmp.{}", ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());

  SplitWriter train{tmp, "train", tok->vocab_size(), opt.shard_tokens, {}, {}, {}};
  SplitWriter val{tmp, "val", tok->vocab_size(), opt.shard_tokens, {}, {}, {}};
  PrepResult res;
  const int32_t eos = tok->specials().eos;
  for (const auto& f : files) {
    std::string text = read_file(f);
    if (text.empty()) fail("prep: input file '{}' is empty", f.string());
    for (auto doc : split_documents(text)) {
      auto ids = tok->encode(doc);
      (res.docs % opt.val_every == opt.val_every - 1 ? val : train).add(ids, eos);
      ++res.docs;
    }
  }
  train.flush();
  val.flush();
  if (val.entries.empty() || train.entries.empty())
    fail("prep: {} documents are too few for a train/validation split (every {}th goes to validation)", res.docs,
         opt.val_every);
  DatasetManifest m;
  m.tokenizer = tok->identity();
  m.vocab_size = tok->vocab_size();
  m.fingerprint = fp;
  m.train = train.entries;
  m.val = val.entries;
  write_file_durable(tmp / "manifest.yaml", m.to_yaml());
  // Swap the new directory in; the old one (if any) is removed only after the new one is in place.
  fs::path old = out;
  old += fmt::format(".old.{}", ::getpid());
  if (fs::exists(out)) fs::rename(out, old);
  publish_directory(tmp, out);
  fs::remove_all(old);
  res.train_tokens = train.total();
  res.val_tokens = val.total();
  spdlog::info("prep: wrote '{}': {} documents, {} train tokens, {} validation tokens ({})", opt.out, res.docs,
               res.train_tokens, res.val_tokens, m.tokenizer);
  return res;
}

}  // namespace strata::data
