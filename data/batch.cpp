#include "data/batch.hpp"

#include <ATen/ATen.h>

namespace strata::data {

BatchLoader::BatchLoader(const TokenDataset& ds, int64_t seq_len, uint64_t seed, bool shuffle)
    : ds_(ds), seq_len_(seq_len), sampler_(ds.n_tokens(), seq_len, seed), shuffle_(shuffle) {}

Batch BatchLoader::get(const std::vector<uint64_t>& indices) const {
  const int64_t B = static_cast<int64_t>(indices.size()), T = seq_len_;
  at::Tensor buf = at::empty({B, T + 1}, at::kLong);
  int64_t* p = buf.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    uint64_t start = shuffle_ ? sampler_.start_of(indices[b]) : (indices[b] % sampler_.windows()) * T;
    ds_.read(start, T + 1, p + b * (T + 1));
  }
  return {buf.narrow(1, 0, T).contiguous(), buf.narrow(1, 1, T).contiguous()};
}

}  // namespace strata::data
