#include "data/batch.hpp"

#include <ATen/ATen.h>

namespace strata::data {

void add_document_ids(Batch& b, int32_t eos) {
  const int64_t B = b.inputs.size(0), T = b.inputs.size(1);
  auto in = b.inputs.contiguous();
  b.doc_ids = at::empty({B, T}, at::kLong);
  b.positions = at::empty({B, T}, at::kLong);
  const int64_t* x = in.data_ptr<int64_t>();
  int64_t* d = b.doc_ids.data_ptr<int64_t>();
  int64_t* p = b.positions.data_ptr<int64_t>();
  for (int64_t r = 0; r < B; ++r) {
    int64_t doc = 0, pos = 0;
    for (int64_t t = 0; t < T; ++t) {
      d[r * T + t] = doc;
      p[r * T + t] = pos++;
      if (x[r * T + t] == eos) ++doc, pos = 0;
    }
  }
}

BatchLoader::BatchLoader(const TokenDataset& ds, int64_t seq_len, uint64_t seed, bool shuffle)
    : ds_(ds), seq_len_(seq_len), sampler_(ds.n_tokens(), seq_len, seed), shuffle_(shuffle) {}

void BatchLoader::fill(uint64_t index, int64_t* row) const {
  uint64_t start = shuffle_ ? sampler_.start_of(index) : (index % sampler_.windows()) * seq_len_;
  ds_.read(start, seq_len_ + 1, row);
}

Batch BatchLoader::get(const std::vector<uint64_t>& indices) const {
  const int64_t B = static_cast<int64_t>(indices.size()), T = seq_len_;
  at::Tensor buf = at::empty({B, T + 1}, at::kLong);
  int64_t* p = buf.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) fill(indices[b], p + b * (T + 1));
  return {buf.narrow(1, 0, T).contiguous(), buf.narrow(1, 1, T).contiguous(), {}, {}, at::zeros({B}, at::kLong)};
}

}  // namespace strata::data
