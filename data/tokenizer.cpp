#include "data/tokenizer.hpp"

#include "core/error.hpp"

namespace strata::data {

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

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& identity) {
  if (identity == "byte" || identity == "byte-v1") return std::make_unique<ByteTokenizer>();
  fail("unknown tokenizer '{}' (known: byte)", identity);
}

}  // namespace strata::data
