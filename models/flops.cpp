#include "models/flops.hpp"

#include "core/error.hpp"

namespace strata::models {
namespace {

// One attention + MLP block (projections, biases, the block's norms).
int64_t block_params(const ModelConfig& c) {
  const int64_t d = c.d_model, h = c.ffn_hidden(), kv = c.kv_heads() * c.head_dim();
  const int64_t b = c.bias ? 1 : 0;
  const int64_t attn = d * d * 2 + d * kv * 2 + b * (2 * d + 2 * kv);
  const bool swiglu = c.arch == "llama";
  const int64_t mlp = (swiglu ? 3 : 2) * d * h + b * ((swiglu ? 2 : 1) * h + d);
  const int64_t norm = c.arch == "llama" ? d : (b ? 2 : 1) * d;  // RMSNorm: gain only
  return attn + mlp + 2 * norm;
}

}  // namespace

std::optional<double> peak_bf16_flops(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) return 989e12;
  if (has("H100")) return has("PCIe") ? 756e12 : has("NVL") ? 835e12 : 989e12;
  if (has("A100")) return 312e12;
  return std::nullopt;
}

int64_t bert_mlm_head_params(const ModelConfig& c) {
  const int64_t d = c.d_model, b = c.bias ? 1 : 0;
  return d * d + b * d + (b ? 2 : 1) * d + c.vocab_size;
}

int64_t bert_pooler_params(const ModelConfig& c) { return c.d_model * c.d_model + (c.bias ? c.d_model : 0); }

int64_t param_count(const ModelConfig& c) {
  const int64_t d = c.d_model, L = c.n_layer, V = c.vocab_size;
  const int64_t ln = (c.bias ? 2 : 1) * d;  // a LayerNorm
  const int64_t head = c.tie_embeddings ? 0 : d * V;
  if (c.arch == "gpt") return L * block_params(c) + V * d + c.max_seq_len * d + ln + head;
  if (c.arch == "llama") return L * block_params(c) + V * d + d + head;
  if (c.arch == "bert")
    return L * block_params(c) + (V + c.max_seq_len + c.type_vocab_size) * d + ln + bert_mlm_head_params(c);
  fail("param_count: architecture '{}' has no formula", c.arch);
}

int64_t matmul_params(const ModelConfig& c) {
  const int64_t n = param_count(c), d = c.d_model;
  // A tied token table stays in (counted once, as the LM head); an untied head is its own
  // matrix, so the input table is a pure lookup and drops out.
  const int64_t lookup = c.tie_embeddings ? 0 : c.vocab_size * d;
  if (c.arch == "gpt") return n - c.max_seq_len * d - lookup;
  if (c.arch == "llama") return n - lookup;
  if (c.arch == "bert") return n - (c.max_seq_len + c.type_vocab_size) * d;  // decoder always tied
  fail("matmul_params: architecture '{}' has no formula", c.arch);
}

double flops_per_token(const ModelConfig& c, int64_t T) {
  return 6.0 * static_cast<double>(matmul_params(c)) + 12.0 * c.n_layer * (c.n_head * c.head_dim()) * T;
}

}  // namespace strata::models
