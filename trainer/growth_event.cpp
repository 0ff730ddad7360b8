// The in-run growth event (recipe `growth:`, specs/growth.md §3): the run trains the small model
// derived from the recipe's model section until growth_step_, then builds the recipe's model,
// fills it with the growth operator, makes a fresh optimizer (or carries G_stack-stacked moments)
// and continues with the same schedule, re-warming the learning rate.
#include <ATen/ATen.h>

#include "checkpoint/checkpoint.hpp"
#include "core/error.hpp"
#include "growth/apply.hpp"
#include "growth/g_stack.hpp"
#include "growth/timing.hpp"
#include "models/activation_checkpoint.hpp"
#include "models/blocks/linear.hpp"
#include "models/flops.hpp"
#include "core/log.hpp"
#include "parallel/world.hpp"
#include "trainer/trainer.hpp"

namespace strata::trainer {
namespace fs = std::filesystem;

void Trainer::setup_growth(bool resume) {
  const auto& g = cfg_.growth;
  const auto& p = cfg_.parallel;
  growth_pending_ = true;
  if (resume)
    if (auto latest = checkpoint::latest_checkpoint(fs::path(cfg_.run.dir) / "checkpoints")) {
      auto st = checkpoint::load_checkpoint(*latest);
      auto it = st.meta.find("growth.stage");
      growth_pending_ = it != st.meta.end() && it->second == "source";
      if (!growth_pending_)
        for (const auto& [k, v] : st.meta)
          if (k.rfind("growth.", 0) == 0 && k != "growth.stage") growth_meta_[k] = v;
    }
  // Growing happens in one process; a checkpoint that already holds the grown model (a growth event
  // earlier in this run, or `strata grow`) trains on under any parallel layout.
  if (growth_pending_ && (p.tp > 1 || p.pp > 1 || p.dp > 1 || p.zero1 || parallel::world_from_env().size > 1))
    fail("growth.operator = {} in a run needs a single process (tp = pp = dp = 1, no zero1); grow offline with "
         "`strata grow` (or run the growth event in one process) and resume the grown checkpoint in parallel",
         g.op);
  const auto& t = cfg_.train;
  const int64_t tokens_per_step = t.micro_batch * t.grad_accum * t.seq_len;
  if (growth_pending_) {
    growth_source_ = growth::source_config(cfg_.model, g);
    growth_step_ = growth::growth_step(g.at_tokens, static_cast<double>(models::param_count(cfg_.model)), tokens_per_step, t.steps);
  } else if (auto it = growth_meta_.find("growth.step"); it != growth_meta_.end()) {
    growth_step_ = std::stoll(it->second);  // grown in this run: the same re-warmed schedule on resume
    const int64_t rewarm = g.rewarm_steps < 0 ? cfg_.schedule.warmup_steps : g.rewarm_steps;
    if (rewarm > 0) cfg_.schedule.rewarm_from = growth_step_, cfg_.schedule.rewarm_steps = rewarm;
  }
  if (growth_pending_)
    spdlog::info("growth: {} from a {}-layer d_model {} model to the recipe's {}-layer d_model {} at step {} ({} tokens)", g.op,
                 growth_source_.n_layer, growth_source_.d_model, cfg_.model.n_layer, cfg_.model.d_model, growth_step_,
                 growth_step_ * tokens_per_step);
  else
    spdlog::info("growth: the checkpoint holds the grown model ({}-layer d_model {})", cfg_.model.n_layer, cfg_.model.d_model);
}

void Trainer::grow_now(int64_t step) {
  const auto& g = cfg_.growth;
  auto res = growth::grow(growth::model_params(*model_), growth_source_, cfg_.model, g);
  std::map<std::string, at::Tensor> carried;
  if (g.optimizer == "carry") {
    if (g.op != "g_stack" || growth_source_.tie_embeddings != cfg_.model.tie_embeddings)
      fail("growth.optimizer = carry needs g_stack with unchanged head tying; use fresh");
    carried = growth::g_stack(opt_->state(), growth_source_.n_layer, res.record.layers);
  } else if (g.optimizer != "fresh") {
    fail("growth.optimizer = '{}': expected fresh or carry", g.optimizer);
  }
  auto model = models::make_model(cfg_.model);
  model->init_weights(cfg_.run.seed);
  growth::load_into(*model, res.params);
  model->to(device_);
  model_ = model;
  model_->train();
  if (cfg_.train.activation_checkpointing) models::set_activation_checkpointing(*model_, true);
  params_.clear();
  for (auto& kv : model_->named_parameters()) params_.emplace_back(kv.key(), kv.value());
  std::set<std::string> linear_weights;
  for (const auto& kv : model_->named_modules())
    if (dynamic_cast<const models::LinearImpl*>(kv.value().get()))
      linear_weights.insert(kv.key().empty() ? "weight" : kv.key() + ".weight");
  clip_params_.clear();
  for (auto& [_, p] : params_) clip_params_.push_back(p);
  opt_ = optim::make_optimizer(cfg_.optim, optim::make_param_groups(params_, cfg_.optim.weight_decay,
                                                                    optim::parse_decay_rule(cfg_.optim.decay_rule), linear_weights));
  opt_->set_tokens_per_step(static_cast<double>(cfg_.train.micro_batch * cfg_.train.grad_accum * cfg_.train.seq_len));
  if (!carried.empty()) opt_->load_state(carried);
  const int64_t rewarm = g.rewarm_steps < 0 ? cfg_.schedule.warmup_steps : g.rewarm_steps;
  if (rewarm > 0) {
    cfg_.schedule.rewarm_from = step;
    cfg_.schedule.rewarm_steps = rewarm;
  }
  growth_meta_ = res.record.meta();
  growth_meta_["growth.step"] = std::to_string(step);
  growth_pending_ = false;
  spdlog::info("growth: step {}: {} grew the model to {:.2f}M parameters (layers {}); {} optimizer state, lr re-warm over {} steps",
               step, g.op, models::param_count(cfg_.model) / 1e6, growth_meta_["growth.layers"], g.optimizer, rewarm);
}

}  // namespace strata::trainer
