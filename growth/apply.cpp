#include "growth/apply.hpp"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "growth/g_stack.hpp"

namespace strata::growth {

ParamMap model_params(models::LanguageModel& model) {
  ParamMap out;
  for (auto& kv : model.named_parameters()) out[kv.key()] = kv.value().detach();
  return out;
}

void load_into(models::LanguageModel& model, const ParamMap& grown) {
  torch::NoGradGuard no_grad;
  size_t used = 0;
  for (auto& kv : model.named_parameters()) {
    auto it = grown.find(kv.key());
    if (it == grown.end()) fail("growth: the grown parameters have no '{}', which the target model needs", kv.key());
    if (!it->second.sizes().equals(kv.value().sizes()))
      fail("growth: grown '{}' has shape {} but the target model expects {}", kv.key(), it->second.sizes(), kv.value().sizes());
    kv.value().copy_(it->second);
    ++used;
  }
  if (used != grown.size()) {
    for (const auto& [name, _] : grown)
      if (!model.named_parameters().contains(name)) fail("growth: grown tensor '{}' is not a parameter of the target model", name);
  }
}

checkpoint::CheckpointState grow_checkpoint(const checkpoint::CheckpointState& src, const models::ModelConfig& source_cfg,
                                            const models::ModelConfig& target_cfg, const GrowthConfig& g,
                                            const std::string& target_yaml) {
  ParamMap params, optim;
  for (const auto& [k, v] : src.tensors) {
    if (k.rfind("model.", 0) == 0) params[k.substr(6)] = v;
    if (k.rfind("optim.", 0) == 0) optim[k] = v;
  }
  if (params.empty()) fail("growth: the source checkpoint has no 'model.*' tensors");
  auto res = grow(params, source_cfg, target_cfg, g);
  auto target = models::make_model(target_cfg);  // shapes check: every target parameter is present
  load_into(*target, res.params);
  checkpoint::CheckpointState out;
  out.step = 0;
  out.config_yaml = target_yaml;
  for (const auto& [k, v] : res.params) out.tensors["model." + k] = v;
  if (g.optimizer == "carry") {
    if (g.op != "g_stack") fail("growth.optimizer = carry is supported for g_stack only (bert2bert: use fresh)");
    if (source_cfg.tie_embeddings != target_cfg.tie_embeddings)
      fail("growth.optimizer = carry cannot carry moments when the head is untied at growth; use fresh");
    if (optim.empty()) fail("growth.optimizer = carry: the source checkpoint has no 'optim.*' state");
    for (auto& [k, v] : g_stack(optim, source_cfg.n_layer, res.record.layers)) out.tensors[k] = v;
  } else if (g.optimizer != "fresh") {
    fail("growth.optimizer = '{}': expected fresh or carry", g.optimizer);
  }
  out.meta = res.record.meta();
  out.meta["growth.source_step"] = std::to_string(src.step);
  out.meta["samples_consumed"] = "0";
  return out;
}

}  // namespace strata::growth
