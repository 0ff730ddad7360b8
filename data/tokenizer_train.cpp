#include "data/tokenizer_train.hpp"

#include <thread>

#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "data/spm_runtime.hpp"

namespace strata::data {
namespace {

// Yields the non-empty lines of the documents to SentencePiece, without copying the text up front.
class LineIterator {
 public:
  explicit LineIterator(const std::vector<std::string_view>& docs) : docs_(docs) {}
  bool next(std::string_view& line) {
    while (doc_ < docs_.size()) {
      std::string_view d = docs_[doc_];
      if (pos_ >= d.size()) {
        ++doc_;
        pos_ = 0;
        continue;
      }
      size_t end = d.find('\n', pos_);
      if (end == std::string_view::npos) end = d.size();
      line = d.substr(pos_, end - pos_);
      pos_ = end + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      return true;
    }
    return false;
  }

 private:
  const std::vector<std::string_view>& docs_;
  size_t doc_ = 0, pos_ = 0;
};

}  // namespace

std::string train_sentencepiece(const std::vector<std::string_view>& docs, const TokenizerTrainOptions& opt) {
  if (opt.model_type != "bpe" && opt.model_type != "unigram")
    fail("--model-type '{}' is not one of: bpe, unigram", opt.model_type);
  if (opt.vocab_size < 300) fail("--vocab-size {} is too small: byte fallback alone needs 256 pieces (use >= 300)", opt.vocab_size);
  const auto& sp = opt.specials;
  // Fixed ids: unk 0, then bos/eos/pad in that order where present; mask/cls/sep as control symbols.
  int next = 1;
  auto id_of = [&](const std::string& piece) { return piece.empty() ? -1 : next++; };
  int bos = id_of(sp.bos), eos = id_of(sp.eos), pad = id_of(sp.pad);
  std::string controls;
  for (const auto* p : {&sp.mask, &sp.cls, &sp.sep})
    if (!p->empty()) controls += (controls.empty() ? "" : ",") + *p;
  int threads = opt.threads > 0 ? static_cast<int>(opt.threads) : static_cast<int>(std::thread::hardware_concurrency());
  std::vector<std::pair<std::string, std::string>> args = {
      {"model_type", opt.model_type},
      {"vocab_size", std::to_string(opt.vocab_size)},
      {"hard_vocab_limit", "false"},
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"max_sentence_length", "16384"},
      {"input_sentence_size", std::to_string(opt.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(std::max(1, threads))},
      {"unk_id", "0"},
      {"bos_id", std::to_string(bos)},
      {"eos_id", std::to_string(eos)},
      {"pad_id", std::to_string(pad)},
      {"minloglevel", "2"},
  };
  if (!sp.bos.empty()) args.emplace_back("bos_piece", sp.bos);
  if (!sp.eos.empty()) args.emplace_back("eos_piece", sp.eos);
  if (!sp.pad.empty()) args.emplace_back("pad_piece", sp.pad);
  if (!controls.empty()) args.emplace_back("control_symbols", controls);
  spdlog::info("prep: training a SentencePiece {} tokenizer (vocab {}) on {} documents", opt.model_type,
               opt.vocab_size, docs.size());
  {
    LineIterator probe(docs);
    std::string_view first;
    if (!probe.next(first)) fail("prep: no text to train a tokenizer on");
  }
  LineIterator it(docs);
  std::string model = spm::train(args, [&](std::string_view& line) { return it.next(line); });
  if (model.empty()) fail("prep: SentencePiece training produced no model");
  return model;
}

}  // namespace strata::data
