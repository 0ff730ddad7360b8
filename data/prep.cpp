#include "data/prep.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <filesystem>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/crc32c.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "data/dataset.hpp"
#include "data/sentencepiece.hpp"
#include "data/shard.hpp"
#include "data/text_input.hpp"
#include "data/tokenizer.hpp"
#include "data/tokenizer_train.hpp"

namespace strata::data {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
namespace {

constexpr uint64_t kBatchBytes = 16 << 20;  // text tokenized per parallel round

std::string fingerprint(const std::vector<InputFile>& files, const PrepOptions& opt, const std::string& tok) {
  std::string key = fmt::format("{}|{}|{}|{}", tok, opt.val_every, opt.shard_tokens, opt.jsonl_field);
  for (const auto& f : files)
    key += fmt::format("|{}:{}:{}", fs::absolute(f.path).string(), f.bytes,
                       fs::last_write_time(f.path).time_since_epoch().count());
  return fmt::format("{:08x}", crc32c(key.data(), key.size()));
}

struct SplitWriter {
  fs::path dir;
  std::string name;
  int64_t vocab, shard_tokens;
  std::vector<int32_t> tokens;
  std::vector<uint64_t> doc_starts;
  std::vector<ShardEntry> entries;

  void add(const int32_t* doc, size_t n, int32_t eos) {
    doc_starts.push_back(tokens.size());
    tokens.insert(tokens.end(), doc, doc + n);
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

// The tokens of a run of documents: flat, with each document's length.
struct Encoded {
  std::vector<int32_t> tokens;
  std::vector<uint32_t> lengths;
};

// Tokenizes docs on `threads` threads (chunks of about equal bytes handed out in order), keeping
// the documents' order in the result.
std::vector<Encoded> encode_parallel(const Tokenizer& tok, const std::vector<std::string_view>& docs, int threads) {
  const size_t n_chunks = std::min<size_t>(docs.size(), static_cast<size_t>(threads) * 4);
  uint64_t total = 0;
  for (auto d : docs) total += d.size();
  std::vector<size_t> bounds{0};
  uint64_t acc = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    acc += docs[i].size();
    if (bounds.size() < n_chunks && acc * n_chunks >= total * bounds.size()) bounds.push_back(i + 1);
  }
  if (bounds.back() != docs.size()) bounds.push_back(docs.size());
  std::vector<Encoded> out(bounds.size() - 1);
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  auto work = [&] {
    for (size_t c; (c = next.fetch_add(1)) < out.size();) {
      try {
        for (size_t d = bounds[c]; d < bounds[c + 1]; ++d) {
          auto ids = tok.encode(docs[d]);
          out[c].tokens.insert(out[c].tokens.end(), ids.begin(), ids.end());
          out[c].lengths.push_back(static_cast<uint32_t>(ids.size()));
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  return out;
}

// The tokenizer for these options; trains one on the inputs when asked (model bytes in *model).
std::unique_ptr<Tokenizer> build_tokenizer(const PrepOptions& opt, const std::vector<InputFile>& files,
                                           std::string* model) {
  const std::string kind = opt.train_tokenizer ? "sentencepiece" : opt.tokenizer;
  if (kind == "byte") {
    if (!opt.tokenizer_model.empty()) fail("prep: --tokenizer-model needs --tokenizer sentencepiece");
    return std::make_unique<ByteTokenizer>();
  }
  if (kind != "sentencepiece") fail("prep: unknown --tokenizer '{}' (byte, sentencepiece)", opt.tokenizer);
  auto specials = SpecialPieces::parse(opt.specials);
  if (opt.train_tokenizer) {
    if (!opt.tokenizer_model.empty()) fail("prep: --train-tokenizer and --tokenizer-model exclude each other");
    std::deque<LoadedFile> loaded;
    std::vector<std::string_view> docs;
    for (const auto& f : files) {
      load_documents(f, opt.jsonl_field, loaded.emplace_back());
      docs.insert(docs.end(), loaded.back().docs.begin(), loaded.back().docs.end());
    }
    TokenizerTrainOptions t;
    t.vocab_size = opt.vocab_size;
    t.model_type = opt.model_type;
    t.specials = specials;
    t.threads = opt.threads;
    *model = train_sentencepiece(docs, t);
  } else {
    if (opt.tokenizer_model.empty()) fail("prep: --tokenizer sentencepiece needs --tokenizer-model <file.model> or --train-tokenizer");
    if (!fs::exists(opt.tokenizer_model)) fail("prep: tokenizer model '{}' does not exist", opt.tokenizer_model);
    *model = read_file(opt.tokenizer_model);
  }
  return std::make_unique<SentencePieceTokenizer>(*model, specials,
                                                  opt.train_tokenizer ? "trained tokenizer" : opt.tokenizer_model);
}

// What names the tokenizer before it exists (training options stand in for the trained model).
std::string tokenizer_key(const PrepOptions& opt) {
  if (opt.train_tokenizer)
    return fmt::format("train:{}:{}:{}", opt.model_type, opt.vocab_size, SpecialPieces::parse(opt.specials).to_string());
  if (opt.tokenizer == "sentencepiece" && fs::exists(opt.tokenizer_model)) {
    std::string bytes = read_file(opt.tokenizer_model);
    return sentencepiece_identity(bytes, SpecialPieces::parse(opt.specials));
  }
  return opt.tokenizer;
}

}  // namespace

PrepResult prep_dataset(const PrepOptions& opt) {
  if (opt.out.empty()) fail("prep: --out is required");
  if (opt.val_every < 2) fail("prep: val_every must be >= 2, got {}", opt.val_every);
  auto files = expand_inputs(opt.inputs);
  std::string fp = fingerprint(files, opt, tokenizer_key(opt));
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
  std::string model_bytes;
  auto tok = build_tokenizer(opt, files, &model_bytes);
  const int threads = std::max(1, opt.threads > 0 ? static_cast<int>(opt.threads)
                                                  : static_cast<int>(std::thread::hardware_concurrency()));
  fs::path tmp = out;
  tmp += fmt::format(".tmp.{}", ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
  struct RemoveOnError {  // a failed prep leaves no half-written directory behind
    fs::path dir;
    ~RemoveOnError() {
      std::error_code ec;
      if (!dir.empty()) fs::remove_all(dir, ec);
    }
  } guard{tmp};

  SplitWriter train{tmp, "train", tok->vocab_size(), opt.shard_tokens, {}, {}, {}};
  SplitWriter val{tmp, "val", tok->vocab_size(), opt.shard_tokens, {}, {}, {}};
  PrepResult res;
  const int32_t eos = tok->specials().eos;
  uint64_t total_bytes = 0, tokens = 0;
  for (const auto& f : files) total_bytes += f.bytes;
  const auto t0 = Clock::now();
  auto last_log = t0;
  std::deque<LoadedFile> batch;
  std::vector<std::string_view> docs;
  uint64_t batch_bytes = 0;
  auto drain = [&] {
    for (const auto& enc : encode_parallel(*tok, docs, threads)) {
      size_t off = 0;
      for (uint32_t len : enc.lengths) {
        (res.docs % static_cast<uint64_t>(opt.val_every) == static_cast<uint64_t>(opt.val_every - 1) ? val : train).add(enc.tokens.data() + off, len, eos);
        off += len;
        ++res.docs;
        tokens += len + 1;
      }
    }
    res.bytes += batch_bytes;
    batch.clear();
    docs.clear();
    batch_bytes = 0;
    auto now = Clock::now();
    double secs = std::chrono::duration<double>(now - t0).count();
    if (std::chrono::duration<double>(now - last_log).count() >= 1.0 || res.bytes == total_bytes) {
      spdlog::info("prep: {:3.0f}% | {:.1f} of {:.1f} MB | {:.1f} MB/s | {:.2f}M tokens/s | {} threads",
                   100.0 * res.bytes / std::max<uint64_t>(total_bytes, 1), res.bytes / 1e6, total_bytes / 1e6,
                   res.bytes / 1e6 / std::max(secs, 1e-9), tokens / 1e6 / std::max(secs, 1e-9), threads);
      last_log = now;
    }
  };
  for (const auto& f : files) {
    auto& lf = batch.emplace_back();
    load_documents(f, opt.jsonl_field, lf);
    docs.insert(docs.end(), lf.docs.begin(), lf.docs.end());
    batch_bytes += f.bytes;
    if (batch_bytes >= kBatchBytes) drain();
  }
  if (!docs.empty() || batch_bytes) drain();
  train.flush();
  val.flush();
  if (val.entries.empty() || train.entries.empty())
    fail("prep: {} documents are too few for a train/validation split (every {}th goes to validation)", res.docs,
         opt.val_every);
  DatasetManifest m;
  m.tokenizer = tok->identity();
  m.vocab_size = tok->vocab_size();
  m.fingerprint = fp;
  m.input_bytes = res.bytes;
  m.train = train.entries;
  m.val = val.entries;
  if (!model_bytes.empty()) {
    m.tokenizer_model = "tokenizer.model";
    write_file_durable(tmp / m.tokenizer_model, model_bytes);
  }
  write_file_durable(tmp / "manifest.yaml", m.to_yaml());
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  // Swap the new directory in; the old one (if any) is removed only after the new one is in place.
  fs::path old = out;
  old += fmt::format(".old.{}", ::getpid());
  if (fs::exists(out)) fs::rename(out, old);
  publish_directory(tmp, out);
  guard.dir.clear();
  fs::remove_all(old);
  res.train_tokens = train.total();
  res.val_tokens = val.total();
  spdlog::info("prep: wrote '{}': {} documents, {} train tokens, {} validation tokens, vocab {} ({}); {:.1f} MB/s, "
               "{:.2f}M tokens/s",
               opt.out, res.docs, res.train_tokens, res.val_tokens, m.vocab_size, m.tokenizer, res.mb_per_s(),
               res.tokens_per_s() / 1e6);
  return res;
}

}  // namespace strata::data
