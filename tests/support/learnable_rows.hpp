// Test batches the tiny models fit in a few steps: rows x[i+1] = (7 x[i] + 3) mod vocab from a random
// start in [2, vocab) (generator seed 17). Returns [steps, batch, len + 1] token rows; callers take
// inputs = narrow(2, 0, len) and next-token targets = narrow(2, 1, len).
#pragma once
#include <cstdint>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace strata::testing {

inline at::Tensor learnable_rows(int64_t steps, int64_t batch, int64_t len, int64_t vocab) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  auto data = at::empty({steps, batch, len + 1}, at::kLong);
  auto start = at::randint(2, vocab, {steps, batch}, gen, at::kLong);
  auto d = data.accessor<int64_t, 3>();
  auto st = start.accessor<int64_t, 2>();
  for (int64_t s = 0; s < steps; ++s)
    for (int64_t b = 0; b < batch; ++b) {
      d[s][b][0] = st[s][b];
      for (int64_t i = 1; i <= len; ++i) d[s][b][i] = (7 * d[s][b][i - 1] + 3) % vocab;
    }
  return data;
}

// Causal-LM inputs and next-token targets [steps, batch, len] from learnable_rows.
inline std::pair<at::Tensor, at::Tensor> learnable_next_token(int64_t steps, int64_t batch, int64_t len, int64_t vocab) {
  auto data = learnable_rows(steps, batch, len, vocab);
  return {data.narrow(2, 0, len).contiguous(), data.narrow(2, 1, len).contiguous()};
}

}  // namespace strata::testing
