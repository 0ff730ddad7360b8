// Parameter counts and training FLOPs per token (specs/models.md §3, PaLM convention).
#pragma once
#include <cstdint>

#include "models/config.hpp"

namespace strata::models {

// Closed-form parameter count of the architecture (embeddings included, tied head counted once).
int64_t param_count(const ModelConfig& cfg);
// N: parameters used in matmuls (all weights except input-embedding lookup and learned positions,
// the LM head included; a tied head counted once).
int64_t matmul_params(const ModelConfig& cfg);
// F = 6N + 12 * L * d_attn * T.
double flops_per_token(const ModelConfig& cfg, int64_t seq_len);

}  // namespace strata::models
