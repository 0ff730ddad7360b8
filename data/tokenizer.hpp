// Tokenizers behind one interface. The byte-level tokenizer maps each UTF-8 byte to its value and
// appends the special tokens after 255; SentencePiece models live in data/sentencepiece.hpp.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace strata::data {

struct SpecialTokens {
  int32_t eos = -1, bos = -1, pad = -1, mask = -1, cls = -1, sep = -1;
  // The ids that are set (>= 0), for collators that must skip special positions.
  std::vector<int32_t> ids() const;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Decodes ids; special tokens are dropped.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual const SpecialTokens& specials() const = 0;
  // A string naming the tokenizer exactly (kind + version / model checksum), stored in manifests.
  virtual std::string identity() const = 0;
};

class ByteTokenizer final : public Tokenizer {
 public:
  ByteTokenizer();
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return 262; }
  const SpecialTokens& specials() const override { return specials_; }
  std::string identity() const override { return "byte-v1"; }

 private:
  SpecialTokens specials_;
};

// Builds the tokenizer a dataset manifest names: "byte-v1", or "sentencepiece:<crc32c>:<specials>",
// whose model is `<dataset_dir>/tokenizer.model` (its checksum must match the identity).
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& identity, const std::filesystem::path& dataset_dir = {});
// "byte" or "sentencepiece": the kind part of an identity (what recipes name in data.tokenizer).
std::string tokenizer_kind(const std::string& identity);

}  // namespace strata::data
