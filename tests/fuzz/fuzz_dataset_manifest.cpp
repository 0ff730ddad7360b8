// Dataset manifests (manifest.yaml written by `strata prep`).
#include "data/dataset.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const auto dir = fuzz::scratch() / "dataset";
  std::filesystem::create_directories(dir);
  fuzz::put(dir / "manifest.yaml", data, size);
  return fuzz::run([&] {
    auto m = data::DatasetManifest::load(dir);
    (void)m.to_yaml();
  });
}
