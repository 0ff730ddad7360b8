// Weight initialisation shared by the architectures (specs/models.md §2): N(0, std) for matrices
// and embeddings, residual output projections (attn.wo, mlp.w2) at std/sqrt(2L) (GPT-2, Llama),
// zero biases, unit norm gains. Deterministic for a seed: parameters are visited in name order.
#pragma once
#include <cstdint>

#include <torch/nn/module.h>

#include "models/config.hpp"

namespace strata::models {

struct InitOptions {
  bool scale_residual = true;  // attn.wo and mlp.w2 at std/sqrt(2L) (GPT-2); BERT: false
  bool truncate = false;       // truncated normal at +-2 std (BERT)
};

void init_transformer(torch::nn::Module& model, const ModelConfig& cfg, uint64_t seed, InitOptions opt = {});

}  // namespace strata::models
