#include "models/flops.hpp"

#include "core/error.hpp"

namespace strata::models {

int64_t param_count(const ModelConfig& c) {
  const int64_t d = c.d_model, L = c.n_layer, V = c.vocab_size, h = c.ffn_hidden();
  const int64_t kv = c.kv_heads() * c.head_dim();
  const int64_t b = c.bias ? 1 : 0;
  if (c.arch == "gpt") {
    int64_t attn = d * d * 2 + d * kv * 2 + b * (2 * d + 2 * kv);
    int64_t mlp = 2 * d * h + b * (h + d);
    int64_t norms = (b ? 2 : 1) * d * 2;
    int64_t head = c.tie_embeddings ? 0 : d * V;
    return L * (attn + mlp + norms) + V * d + c.max_seq_len * d + (b ? 2 : 1) * d + head;
  }
  fail("param_count: architecture '{}' has no formula", c.arch);
}

int64_t matmul_params(const ModelConfig& c) {
  int64_t n = param_count(c);
  if (c.arch == "gpt") {
    // Drop the position table; the tied token table is counted once as the LM head.
    return n - c.max_seq_len * c.d_model;
  }
  fail("matmul_params: architecture '{}' has no formula", c.arch);
}

double flops_per_token(const ModelConfig& c, int64_t T) {
  return 6.0 * static_cast<double>(matmul_params(c)) + 12.0 * c.n_layer * (c.n_head * c.head_dim()) * T;
}

}  // namespace strata::models
