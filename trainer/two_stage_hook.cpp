#include "trainer/two_stage_hook.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "core/log.hpp"

namespace strata::trainer {

TwoStageHook::TwoStageHook(const growth::TwoStageConfig& cfg, int64_t n_layer, int64_t start_step, int64_t train_steps,
                           int64_t tokens_per_step)
    : cfg_(cfg),
      n_layer_(n_layer),
      start_(start_step),
      end_(start_step + growth::stage1_steps(cfg, train_steps - start_step, tokens_per_step)),
      sampler_(static_cast<uint64_t>(cfg.seed), growth::prefix_count(n_layer, cfg.block_layers)) {
  spdlog::info("two-stage training: stage 1 over steps [{}, {}) trains one of {} prefixes of {} blocks per step ({} shared "
               "parameters), stage 2 the full {}-layer model",
               start_, end_, sampler_.count(), cfg_.block_layers, cfg_.train_shared ? "with" : "frozen", n_layer_);
}

int64_t TwoStageHook::begin_step(int64_t step, std::vector<std::pair<std::string, at::Tensor>>& params) {
  frozen_.clear();
  if (step < start_) return last_stage_ = 0, last_blocks_ = 0;
  if (step >= end_) {
    if (step == end_ && last_stage_ != 2) spdlog::info("two-stage training: stage 2 (the full model) from step {}", step);
    last_stage_ = 2, last_blocks_ = n_layer_;
    return 0;
  }
  const int64_t depth = sampler_.next();
  for (auto& [name, p] : params)
    if (!growth::trained_in_stage1(name, depth, cfg_.block_layers, cfg_.train_shared)) {
      if (p.grad().defined()) p.mutable_grad().reset();  // the optimizer skips a parameter without a gradient
      p.requires_grad_(false);
      frozen_.push_back(p);
    }
  last_stage_ = 1, last_blocks_ = depth * cfg_.block_layers;
  return last_blocks_;
}

void TwoStageHook::end_backward() {
  for (auto& p : frozen_) p.requires_grad_(true);
  frozen_.clear();
}

std::vector<std::pair<std::string, double>> TwoStageHook::metrics() const {
  if (last_stage_ == 0) return {};
  return {{"two_stage/stage", static_cast<double>(last_stage_)}, {"two_stage/depth", static_cast<double>(last_blocks_)}};
}

void TwoStageHook::save_state(std::map<std::string, at::Tensor>& tensors) const { tensors["rng.two_stage"] = sampler_.state(); }

void TwoStageHook::load_state(const std::map<std::string, at::Tensor>& tensors, int64_t step, const std::string& where) {
  auto it = tensors.find("rng.two_stage");
  if (it != tensors.end()) return sampler_.set_state(it->second);
  if (step > start_ && step < end_)
    fail("checkpoint '{}' (step {}) has no 'rng.two_stage' generator state but falls inside stage 1 (steps [{}, {})) of "
         "growth.two_stage; it was written by a run without two-stage training",
         where, step, start_, end_);
}

std::unique_ptr<TwoStageHook> make_two_stage_hook(const RunConfig& cfg, int64_t start_step, int64_t world_size) {
  const auto& ts = cfg.growth.two_stage;
  if (!ts.enabled()) return nullptr;
  const auto& p = cfg.parallel;
  auto refuse = [](const std::string& key) {
    fail("growth.two_stage is not supported with {} (stage 1 freezes parameters per step, which this path does not "
         "handle); run two-stage training in one process without it",
         key);
  };
  if (p.tp > 1) refuse(fmt::format("parallel.tp = {}", p.tp));
  if (p.pp > 1) refuse(fmt::format("parallel.pp = {}", p.pp));
  if (p.zero1) refuse("parallel.zero1 = true");
  if (p.dp > 1 || world_size > 1) refuse(fmt::format("data parallelism (parallel.dp = {}, {} processes)", p.dp, world_size));
  if (cfg.optim.name != "adamw") refuse(fmt::format("optim.name = {} (only adamw)", cfg.optim.name));
  if (cfg.sparsity.method != "none") refuse(fmt::format("sparsity.method = {}", cfg.sparsity.method));
  const int64_t tokens_per_step = cfg.train.micro_batch * cfg.train.grad_accum * cfg.train.seq_len;
  return std::make_unique<TwoStageHook>(ts, cfg.model.n_layer, start_step, cfg.train.steps, tokens_per_step);
}

}  // namespace strata::trainer
