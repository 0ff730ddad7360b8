// When train.fused_loss (models/blocks/linear_cross_entropy.hpp) can replace logits + cross-entropy:
// the pp = 1 trainer and the pipeline's last stage ask the same question.
#pragma once
#include <string>

#include "models/language_model.hpp"
#include "trainer/run_config.hpp"

namespace strata::trainer {

// Empty when the fused loss applies to this run; otherwise why not (for the warning). Needs tp = 1
// (the vocab-parallel loss already avoids a gathered [N, vocab]), no reweighting (per-sequence
// losses) and a plain output head (GPT, Llama; not BERT's MLM head).
std::string fused_loss_blocker(const RunConfig& cfg, models::LanguageModel& model);

// The fused loss of the last layer's output `x`: the model's final norm, then head and cross-entropy
// in row chunks (mean over targets != -100).
at::Tensor fused_head_loss(models::LanguageModel& model, const at::Tensor& x, const at::Tensor& targets);

}  // namespace strata::trainer
