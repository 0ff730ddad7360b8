// Model hyper-parameters shared by every architecture (GPT-2, Llama, BERT).
#pragma once
#include <cstdint>
#include <string>

namespace strata::models {

struct ModelConfig {
  std::string arch = "gpt";          // gpt | llama | bert
  int64_t n_layer = 4;
  int64_t d_model = 128;
  int64_t n_head = 4;
  int64_t n_kv_head = 0;             // 0 = n_head (no GQA)
  int64_t d_ff = 0;                  // 0 = architecture rule (4d for GPT/BERT, SwiGLU rule for Llama)
  int64_t multiple_of = 256;         // Llama SwiGLU hidden-size rounding
  double ffn_dim_multiplier = 0.0;   // Llama-3 style multiplier (0 = none)
  int64_t vocab_size = 262;
  int64_t max_seq_len = 256;
  double dropout = 0.0;
  double norm_eps = 1e-5;
  bool bias = true;
  bool tie_embeddings = true;
  double rope_theta = 10000.0;
  double init_std = 0.02;
  int64_t type_vocab_size = 2;       // BERT token types (segment A/B)

  int64_t head_dim() const { return d_model / n_head; }
  int64_t kv_heads() const { return n_kv_head > 0 ? n_kv_head : n_head; }
  int64_t ffn_hidden() const;  // resolved d_ff
};

}  // namespace strata::models
