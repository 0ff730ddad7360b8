#include "trainer/fused_loss.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "models/blocks/linear_cross_entropy.hpp"

namespace strata::trainer {

namespace {
std::string no_plain_head(models::LanguageModel& model) {
  return fmt::format("model.arch '{}' has no plain output projection", model.config().arch);
}
}  // namespace

std::string fused_loss_blocker(const RunConfig& cfg, models::LanguageModel& model) {
  if (cfg.parallel.tp > 1) return "parallel.tp > 1 (the vocab-parallel cross-entropy already avoids gathered logits)";
  if (cfg.reweighting.strategy != "none") return "reweighting needs per-sequence losses";
  if (!model.head_weight()) return no_plain_head(model);
  return {};
}

at::Tensor fused_head_loss(models::LanguageModel& model, const at::Tensor& x, const at::Tensor& targets) {
  auto weight = model.head_weight();
  if (!weight) fail("train.fused_loss: {}", no_plain_head(model));
  return models::linear_cross_entropy(model.head_features(x), *weight, targets);
}

}  // namespace strata::trainer
