// Token shards: header, sizes and document offsets checked against the file before any read.
#include "data/shard.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const auto path = fuzz::scratch() / "shard.bin";
  fuzz::put(path, data, size);
  return fuzz::run([&] {
    data::ShardReader r(path, /*verify_checksum=*/size % 2 == 0);
    const auto& info = r.info();
    int64_t buf[16];
    if (info.n_tokens > 0) {
      const uint64_t n = std::min<uint64_t>(16, info.n_tokens);
      r.read(info.n_tokens - n, n, buf);
    }
    if (info.n_docs > 0) (void)r.doc_start(info.n_docs - 1);
  });
}
