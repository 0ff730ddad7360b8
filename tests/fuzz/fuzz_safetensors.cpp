// safetensors files (Hugging Face weights): header length, JSON header, offsets and dtypes.
#include "checkpoint/safetensors.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const auto path = fuzz::scratch() / "model.safetensors";
  fuzz::put(path, data, size);
  return fuzz::run([&] { (void)checkpoint::read_safetensors(path); });
}
