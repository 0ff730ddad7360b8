// Parameter counts and training FLOPs per token (specs/models.md §3, PaLM convention).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "models/config.hpp"

namespace strata::models {

// Closed-form parameter count of the model make_model(cfg) builds (embeddings included, a tied
// head counted once). For BERT that is BertForMaskedLM: encoder + MLM head, no pooler.
int64_t param_count(const ModelConfig& cfg);
// N: parameters used in matmuls (all weights except input-embedding lookups and learned
// positions/token types, the LM head included; a tied head counted once). Norm gains and biases
// are included (for GPT-2 small this gives the spec's 123,653,376).
int64_t matmul_params(const ModelConfig& cfg);
// F = 6N + 12 * L * d_attn * T.
double flops_per_token(const ModelConfig& cfg, int64_t seq_len);

// Peak dense bf16 FLOP/s of an accelerator by its CUDA device name (spec §3: A100 312, H100 SXM
// and H200 989 TFLOP/s; H100 PCIe 756, H100 NVL 835); nullopt for devices not in the table.
std::optional<double> peak_bf16_flops(const std::string& device_name);

// BERT pieces, to relate BertForMaskedLM to BertModel counts: BertModel = param_count
// - bert_mlm_head_params + bert_pooler_params.
int64_t bert_mlm_head_params(const ModelConfig& cfg);  // transform dense + LayerNorm + vocab bias
int64_t bert_pooler_params(const ModelConfig& cfg);    // dense d->d with bias

}  // namespace strata::models
