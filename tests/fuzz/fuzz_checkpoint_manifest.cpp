// Checkpoint directories: manifest.pb (protobuf) and tensors.bin. The input's first 4 bytes
// (little-endian) give the manifest's length; the rest of the manifest's share is the manifest, the
// remainder tensors.bin. Loading must check every offset, size, dtype and CRC32C before use.
#include <cstring>

#include "checkpoint/checkpoint.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  if (size < 4) return 0;
  uint32_t n = 0;
  std::memcpy(&n, data, 4);
  n = static_cast<uint32_t>(std::min<size_t>(n, size - 4));
  const auto dir = fuzz::scratch() / "step_1";
  std::filesystem::create_directories(dir);
  fuzz::put(dir / "manifest.pb", data + 4, n);
  fuzz::put(dir / "tensors.bin", data + 4 + n, size - 4 - n);
  return fuzz::run([&] { (void)checkpoint::load_checkpoint(dir); });
}
