// SentencePiece tokenizers (BPE or unigram .model files, e.g. one trained by `strata prep
// --train-tokenizer` or a Llama-2 tokenizer.model) behind data::Tokenizer, with configurable special
// tokens. A special whose piece is in the model uses the model's id; one that is not (say [MASK] in
// a Llama model) gets a new id after the model's pieces, so vocab_size() can exceed the model's size.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "data/tokenizer.hpp"

namespace strata::data {
namespace spm {
class Processor;
}

// The piece text of each special role; an empty string means the role is absent (EOS is required:
// documents are packed with it). Written as "bos=<s>,eos=</s>,pad=<pad>,mask=[MASK],cls=[CLS],sep=[SEP]".
struct SpecialPieces {
  std::string bos = "<s>", eos = "</s>", pad = "<pad>", mask = "[MASK]", cls = "[CLS]", sep = "[SEP]";

  // Parses "role=piece,..." over the defaults; roles not named keep their default, "role=" removes one.
  static SpecialPieces parse(const std::string& spec);
  std::string to_string() const;
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Loads a serialized model (the bytes of a .model file); `origin` names it in errors.
  SentencePieceTokenizer(const std::string& model_bytes, const SpecialPieces& specials, const std::string& origin);
  static std::unique_ptr<SentencePieceTokenizer> load(const std::filesystem::path& model_file,
                                                      const SpecialPieces& specials);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  const SpecialTokens& specials() const override { return specials_; }
  std::string identity() const override { return identity_; }
  int64_t model_pieces() const { return model_pieces_; }

 private:
  std::unique_ptr<spm::Processor> sp_;
  SpecialTokens specials_;
  int64_t model_pieces_ = 0, vocab_size_ = 0;
  std::string identity_, origin_;
};

// Identity of a SentencePiece tokenizer: "sentencepiece:<crc32c of the model bytes>:<specials>".
std::string sentencepiece_identity(const std::string& model_bytes, const SpecialPieces& specials);

}  // namespace strata::data
