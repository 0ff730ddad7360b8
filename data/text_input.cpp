#include "data/text_input.hpp"

#include <algorithm>
#include <cstring>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "data/jsonl.hpp"

namespace strata::data {
namespace fs = std::filesystem;

namespace {
bool is_jsonl(const fs::path& p) { return p.extension() == ".jsonl" || p.extension() == ".ndjson"; }
}  // namespace

std::vector<InputFile> expand_inputs(const std::vector<std::string>& inputs) {
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
  std::vector<InputFile> out;
  for (const auto& f : files) {
    uint64_t n = fs::file_size(f);
    if (n == 0) fail("prep: input file '{}' is empty", f.string());
    out.push_back({f, is_jsonl(f), n});
  }
  return out;
}

void check_utf8(std::string_view s, const std::string& file, uint64_t base_offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  auto bad = [&](size_t at, const char* why) {
    fail("{}: invalid UTF-8 at byte offset {} ({}); convert the file to UTF-8", file, base_offset + at, why);
  };
  while (i < n) {
    if (i + 8 <= n) {  // fast path: 8 ASCII bytes at once
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else bad(i, c >= 0x80 && c < 0xC0 ? "unexpected continuation byte" : "invalid lead byte");
    if (i + len > n) bad(i, "sequence cut off by the end of the text");
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) bad(i, "missing continuation byte");
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) bad(i, "overlong encoding");
    if (cp >= 0xD800 && cp <= 0xDFFF) bad(i, "UTF-16 surrogate");
    if (cp > 0x10FFFF) bad(i, "code point above U+10FFFF");
    i += len;
  }
}

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

void load_documents(const InputFile& f, const std::string& field, LoadedFile& out) {
  out.text = read_file(f.path);
  out.owned.clear();
  out.docs.clear();
  if (out.text.empty()) fail("prep: input file '{}' is empty", f.path.string());
  check_utf8(out.text, f.path.string());
  if (!f.jsonl) {
    out.docs = split_documents(out.text);
    return;
  }
  std::string_view all(out.text);
  size_t pos = 0;
  uint64_t line_no = 0;
  while (pos < all.size()) {
    size_t end = all.find('\n', pos);
    if (end == std::string_view::npos) end = all.size();
    std::string_view line = all.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    std::string text = jsonl_field(line, field, fmt::format("{}:{}", f.path.string(), line_no));
    if (text.empty()) continue;
    check_utf8(text, fmt::format("{}:{} (field '{}' after unescaping)", f.path.string(), line_no, field));
    out.owned.push_back(std::move(text));
    out.docs.emplace_back(out.owned.back());
  }
  if (out.docs.empty()) fail("prep: JSONL file '{}' has no non-empty '{}' field", f.path.string(), field);
}

}  // namespace strata::data
