#include "data/jsonl.hpp"

#include <cstdint>
#include <optional>

#include "core/error.hpp"

namespace strata::data {
namespace {

class Parser {
 public:
  Parser(std::string_view s, const std::string& where) : s_(s), where_(where) {}

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) ++i_;
  }
  [[noreturn]] void bad(const std::string& why) const { fail("{}: invalid JSON at column {}: {}", where_, i_ + 1, why); }
  char peek() {
    ws();
    if (i_ >= s_.size()) bad("unexpected end of line");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) bad(fmt::format("expected '{}', found '{}'", c, s_[i_]));
    ++i_;
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (i_ + 4 > s_.size()) bad("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else bad("bad hex digit in \\u escape");
    }
    return v;
  }
  // Parses a string; decodes it into *out when out is non-null.
  void string(std::string* out) {
    expect('"');
    while (true) {
      if (i_ >= s_.size()) bad("unterminated string");
      char c = s_[i_++];
      if (c == '"') return;
      if (static_cast<unsigned char>(c) < 0x20) bad("control character inside a string");
      if (c != '\\') {
        if (out) *out += c;
        continue;
      }
      if (i_ >= s_.size()) bad("unterminated escape");
      char e = s_[i_++];
      char plain = e == '"' ? '"' : e == '\\' ? '\\' : e == '/' ? '/' : e == 'b' ? '\b' : e == 'f' ? '\f'
                 : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : 0;
      if (plain) {
        if (out) *out += plain;
      } else if (e == 'u') {
        uint32_t cp = hex4();
        if (cp >= 0xD800 && cp < 0xDC00) {
          if (i_ + 2 > s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u') bad("unpaired surrogate in \\u escape");
          i_ += 2;
          uint32_t lo = hex4();
          if (lo < 0xDC00 || lo >= 0xE000) bad("invalid low surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          bad("unpaired surrogate in \\u escape");
        }
        if (out) put_utf8(*out, cp);
      } else {
        bad(fmt::format("unknown escape '\\{}'", e));
      }
    }
  }
  void literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) bad("unexpected token");
    i_ += word.size();
  }
  void value(int depth) {
    if (depth > 256) bad("nesting too deep");
    char c = peek();
    if (c == '"') return string(nullptr);
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++i_;
      if (peek() == close) {
        ++i_;
        return;
      }
      while (true) {
        if (close == '}') {
          string(nullptr);
          expect(':');
        }
        value(depth + 1);
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(close);
        return;
      }
    }
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = i_;
      while (i_ < s_.size() && std::string_view("+-0123456789.eE").find(s_[i_]) != std::string_view::npos) ++i_;
      if (i_ == start) bad("bad number");
      return;
    }
    bad(fmt::format("unexpected character '{}'", c));
  }
  std::string field(std::string_view name) {
    expect('{');
    std::optional<std::string> found;
    if (peek() != '}') {
      while (true) {
        std::string key;
        string(&key);
        expect(':');
        if (key == name) {
          if (peek() != '"') bad(fmt::format("field '{}' is not a string", name));
          std::string v;
          string(&v);
          found = std::move(v);
        } else {
          value(1);
        }
        if (peek() == ',') {
          ++i_;
          continue;
        }
        break;
      }
    }
    expect('}');
    ws();
    if (i_ != s_.size()) bad("trailing characters after the object");
    if (!found) fail("{}: JSON object has no field '{}' (set --jsonl-field)", where_, name);
    return *found;
  }

 private:
  std::string_view s_;
  const std::string& where_;
  size_t i_ = 0;
};

}  // namespace

std::string jsonl_field(std::string_view line, std::string_view field, const std::string& where) {
  return Parser(line, where).field(field);
}

}  // namespace strata::data
