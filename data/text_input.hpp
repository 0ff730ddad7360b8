// Reading `strata prep` inputs: text files, directories of them (recursively, sorted), and JSON
// Lines files (*.jsonl, *.ndjson) with a text field. Text must be valid UTF-8; errors name the file
// and the byte offset.
#pragma once
#include <cstdint>
#include <deque>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace strata::data {

struct InputFile {
  std::filesystem::path path;
  bool jsonl = false;
  uint64_t bytes = 0;
};

// Expands files and directories; a missing input, an empty file or no files at all is an error.
std::vector<InputFile> expand_inputs(const std::vector<std::string>& inputs);

// Fails with "<file>: invalid UTF-8 at byte offset N" on the first bad sequence (base_offset is
// added to the offset, for text that starts inside the file).
void check_utf8(std::string_view bytes, const std::string& file, uint64_t base_offset = 0);

// Splits text into documents at blank lines; a block shorter than 64 bytes (a heading such as
// "Genesis 1") is joined to the block after it.
std::vector<std::string_view> split_documents(std::string_view text);

// One file's documents, ready to tokenize (views into `text` or `owned`).
struct LoadedFile {
  std::string text;
  std::deque<std::string> owned;
  std::vector<std::string_view> docs;
};
void load_documents(const InputFile& f, const std::string& jsonl_field, LoadedFile& out);

}  // namespace strata::data
