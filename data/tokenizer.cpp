#include "data/tokenizer.hpp"

#include <algorithm>

#include "core/crc32c.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "data/sentencepiece.hpp"

namespace strata::data {

std::vector<int32_t> SpecialTokens::ids() const {
  std::vector<int32_t> out;
  for (int32_t id : {eos, bos, pad, mask, cls, sep})
    if (id >= 0 && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  return out;
}

ByteTokenizer::ByteTokenizer() {
  specials_.eos = 256;
  specials_.bos = 257;
  specials_.pad = 258;
  specials_.mask = 259;
  specials_.cls = 260;
  specials_.sep = 261;
}

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) out[i] = static_cast<unsigned char>(text[i]);
  return out;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (auto id : ids)
    if (id >= 0 && id < 256) out.push_back(static_cast<char>(id));
  return out;
}

std::string tokenizer_kind(const std::string& identity) {
  if (identity == "byte" || identity == "byte-v1") return "byte";
  if (identity.rfind("sentencepiece", 0) == 0) return "sentencepiece";
  return identity;
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& identity, const std::filesystem::path& dataset_dir) {
  if (identity == "byte" || identity == "byte-v1") return std::make_unique<ByteTokenizer>();
  const std::string prefix = "sentencepiece:";
  if (identity.rfind(prefix, 0) == 0 && identity.size() > prefix.size() + 9 && identity[prefix.size() + 8] == ':') {
    if (dataset_dir.empty()) fail("tokenizer '{}' needs the dataset directory that holds its tokenizer.model", identity);
    auto file = dataset_dir / "tokenizer.model";
    if (!std::filesystem::exists(file))
      fail("dataset '{}' names tokenizer '{}' but has no tokenizer.model: re-run `strata prep`", dataset_dir.string(),
           identity);
    std::string bytes = read_file(file);
    std::string want = identity.substr(prefix.size(), 8);
    std::string have = fmt::format("{:08x}", crc32c(bytes.data(), bytes.size()));
    if (have != want)
      fail("tokenizer model '{}' has checksum {} but the dataset manifest names {}: the file was replaced; re-run "
           "`strata prep`",
           file.string(), have, want);
    return std::make_unique<SentencePieceTokenizer>(bytes, SpecialPieces::parse(identity.substr(prefix.size() + 9)),
                                                    file.string());
  }
  fail("unknown tokenizer '{}' (known: byte-v1, sentencepiece:<crc32c>:<specials>)", identity);
}

}  // namespace strata::data
