#include "data/sentencepiece.hpp"

#include <algorithm>

#include "core/crc32c.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "data/spm_runtime.hpp"

namespace strata::data {

SpecialPieces SpecialPieces::parse(const std::string& spec) {
  SpecialPieces s;
  size_t i = 0;
  while (i < spec.size()) {
    size_t end = spec.find(',', i);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(i, end - i);
    i = end + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) fail("special tokens '{}': '{}' is not role=piece", spec, item);
    std::string role = item.substr(0, eq), piece = item.substr(eq + 1);
    std::string* dst = role == "bos" ? &s.bos : role == "eos" ? &s.eos : role == "pad" ? &s.pad
                     : role == "mask" ? &s.mask : role == "cls" ? &s.cls : role == "sep" ? &s.sep : nullptr;
    if (!dst) fail("special tokens '{}': unknown role '{}' (bos, eos, pad, mask, cls, sep)", spec, role);
    *dst = piece;
  }
  if (s.eos.empty()) fail("special tokens '{}': eos is required (documents are separated by it)", spec);
  return s;
}

std::string SpecialPieces::to_string() const {
  return fmt::format("bos={},eos={},pad={},mask={},cls={},sep={}", bos, eos, pad, mask, cls, sep);
}

std::string sentencepiece_identity(const std::string& model_bytes, const SpecialPieces& specials) {
  return fmt::format("sentencepiece:{:08x}:{}", crc32c(model_bytes.data(), model_bytes.size()), specials.to_string());
}

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_bytes, const SpecialPieces& pieces,
                                               const std::string& origin)
    : sp_(std::make_unique<spm::Processor>(model_bytes, origin)), origin_(origin) {
  model_pieces_ = sp_->piece_size();
  vocab_size_ = model_pieces_;
  auto resolve = [&](const std::string& piece) -> int32_t {
    if (piece.empty()) return -1;
    for (char c : piece)
      if (c == ',' || c == '=') fail("tokenizer model '{}': special piece '{}' may not contain ',' or '='", origin, piece);
    int id = sp_->find_piece(piece);
    if (id >= 0) return id;
    return static_cast<int32_t>(vocab_size_++);  // not in the model: a new id after its pieces
  };
  specials_.bos = resolve(pieces.bos);
  specials_.eos = resolve(pieces.eos);
  specials_.pad = resolve(pieces.pad);
  specials_.mask = resolve(pieces.mask);
  specials_.cls = resolve(pieces.cls);
  specials_.sep = resolve(pieces.sep);
  if (specials_.eos < 0) fail("tokenizer model '{}': an eos piece is required", origin);
  identity_ = sentencepiece_identity(model_bytes, pieces);
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::load(const std::filesystem::path& model_file,
                                                                     const SpecialPieces& specials) {
  if (!std::filesystem::exists(model_file)) fail("tokenizer model '{}' does not exist", model_file.string());
  return std::make_unique<SentencePieceTokenizer>(read_file(model_file), specials, model_file.string());
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const { return sp_->encode(text); }

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  auto special = specials_.ids();
  std::vector<int> keep;
  keep.reserve(ids.size());
  for (int32_t id : ids)
    if (id >= 0 && id < model_pieces_ && std::find(special.begin(), special.end(), id) == special.end() &&
        !sp_->is_control(id))
      keep.push_back(id);
  return sp_->decode(keep);
}

}  // namespace strata::data
