// Shared pieces of the parser fuzz targets: a private scratch directory per process (the parsers
// under test read files), and the rule for what counts as a clean rejection.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace strata::fuzz {

// Removed when the process exits normally.
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() {
    const char* base = std::getenv("TMPDIR");
    path = std::filesystem::path(base && *base ? base : "/tmp") / ("strata-fuzz." + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline const std::filesystem::path& scratch() {
  static const ScratchDir dir;
  return dir.path;
}

inline void put(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

// Runs one parse. A parser must either accept the input or throw an exception with a message; any
// crash, hang or runaway allocation is a finding (libFuzzer and the sanitizers report those).
template <class F>
int run(F&& parse) {
  try {
    parse();
  } catch (const std::exception& e) {
    if (std::string(e.what()).empty()) std::abort();  // a rejection must say why
  }
  return 0;
}

}  // namespace strata::fuzz
