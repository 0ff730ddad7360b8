// Tiny configurations of the three architectures for model tests (run in milliseconds).
#pragma once
#include <memory>

#include "models/config.hpp"
#include "models/language_model.hpp"

namespace strata::testing {

inline models::ModelConfig tiny_config(const std::string& arch) {
  models::ModelConfig c;
  c.arch = arch;
  c.n_layer = 2;
  c.d_model = 32;
  c.n_head = 4;
  c.vocab_size = 50;
  c.max_seq_len = 32;
  if (arch == "llama") {
    c.n_kv_head = 2;
    c.multiple_of = 16;
    c.bias = false;
    c.tie_embeddings = false;
  } else if (arch == "bert") {
    c.norm_eps = 1e-12;
  }
  return c;
}

inline int64_t numel(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace strata::testing
