#include "trainer/sparsity_hook.hpp"

#include <filesystem>
#include <set>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "models/flops.hpp"
#include "optim/zero1.hpp"
#include "trainer/tensor_parallel_setup.hpp"

namespace strata::trainer {

namespace {

// The prunable matrices of `model`, each with its tp layout (this tp rank's part of the full matrix).
std::vector<sparsity::Prunable> prunable_with_layouts(models::LanguageModel& model, const TensorParallelSetup* tp) {
  auto prunable = sparsity::prunable_set(model);
  if (tp)
    for (auto& p : prunable)
      if (const auto* l = tp->plan().layout_of(p.weight))
        p.shard = sparsity::layout_from_starts(l->dim, l->full, l->local, l->starts, tp->plan().ctx->group->rank());
  return prunable;
}

}  // namespace

sparsity::Accounting sparsity_accounting(const RunConfig& cfg, models::LanguageModel& model, int64_t dp_size,
                                         const TensorParallelSetup* tp) {
  sparsity::Accounting acc;
  acc.total_params = 0;  // the tp = 1 model's count: a tp shard counts at its full size
  for (const auto& p : model.parameters()) {
    const auto* l = tp ? tp->plan().layout_of(p) : nullptr;
    acc.total_params += l ? p.numel() / l->local * l->full : p.numel();
  }
  acc.flops_per_token = models::flops_per_token(cfg.model, cfg.train.seq_len);
  acc.tokens_per_step = static_cast<double>(cfg.train.micro_batch * cfg.train.grad_accum * cfg.train.seq_len * dp_size);
  for (const auto& p : prunable_with_layouts(model, tp)) acc.matrices.emplace_back(p.name, sparsity::full_numel(p.weight, p.shard));
  return acc;
}

std::unique_ptr<sparsity::Sparsifier> make_trainer_sparsifier(const RunConfig& cfg, models::LanguageModel& model,
                                                              sparsity::Accounting acc,
                                                              const std::vector<std::pair<std::string, at::Tensor>>& held,
                                                              bool is_main, const TensorParallelSetup* tp) {
  const auto& sc = cfg.sparsity;
  if (sc.method == "none") return nullptr;
  if (cfg.growth.enabled()) fail("sparsity.method = {} cannot be combined with growth: (the prunable set changes shape)", sc.method);
  if (sc.start_fraction >= sc.end_fraction)
    fail("sparsity.start_fraction = {} must be below sparsity.end_fraction = {}", sc.start_fraction, sc.end_fraction);
  if (acc.matrices.empty())
    fail("sparsity: no model-wide accounting (trainer::sparsity_accounting must run before the pipeline cuts the model)");
  std::set<std::string> held_names;
  for (const auto& [name, _] : held) held_names.insert(name);
  std::vector<sparsity::Prunable> prunable;  // this pipeline stage's (every one without pp)
  for (auto& p : prunable_with_layouts(model, tp))
    if (held_names.count(p.name)) prunable.push_back(std::move(p));
  std::shared_ptr<parallel::ProcessGroup> shard_group;
  if (tp) shard_group = tp->plan().ctx->group;  // thresholds of tp-sharded matrices over the tp group
  auto seeded = sc;
  if (seeded.seed < 0) seeded.seed = cfg.run.seed;
  const auto total_params = acc.total_params;
  auto sp = std::make_unique<sparsity::Sparsifier>(seeded, std::move(prunable), cfg.train.steps, std::move(acc), shard_group);
  spdlog::info("sparsity: {} to {:.3f} over {} prunable matrices ({:.2f}M of {:.2f}M parameters){}", sc.method, sc.sparsity,
               sp->matrices().size(), sp->prunable_entries() / 1e6, total_params / 1e6,
               sc.method == "gradual" ? fmt::format(", pruning steps {} -> {} (compute {:.0f}% -> {:.0f}%), every {} steps",
                                                    sp->plan().start_step, sp->plan().end_step, 100 * sc.start_fraction,
                                                    100 * sc.end_fraction, sc.prune_every)
                                      : std::string());
  if (sc.dense_from_step >= 0) spdlog::info("sparsity: dense fine-tuning (masks dropped, fresh optimizer) from step {}", sc.dense_from_step);
  spdlog::info("sparsity: prunable set {}", sp->prunable_list());
  if (cfg.parallel.pp > 1)
    spdlog::info("sparsity: this pipeline stage masks {} of the {} prunable matrices", sp->prunable().size(),
                 sp->matrices().size());
  if (is_main) {
    std::filesystem::create_directories(cfg.run.dir);
    std::string text;
    for (const auto& m : sp->matrices()) text += m.first + "\n";
    write_file_atomic(std::filesystem::path(cfg.run.dir) / "sparsity_prunable.txt", text);
  }
  return sp;
}

void restart_optimizer(std::unique_ptr<optim::Optimizer>& opt, const RunConfig& cfg, int64_t dp_size) {
  auto make = [&](std::vector<optim::ParamGroup> g) { return optim::make_optimizer(cfg.optim, std::move(g)); };
  if (auto* zero = dynamic_cast<optim::Zero1*>(opt.get())) zero->restart_inner(make);
  else opt = make(opt->groups());
  opt->set_tokens_per_step(static_cast<double>(cfg.train.micro_batch * cfg.train.grad_accum * cfg.train.seq_len * dp_size));
}

std::string sparsity_log_line(const sparsity::Sparsifier& sp) {
  std::map<std::string, double> m;
  for (const auto& [k, v] : sp.metrics()) m[k] = v;
  return fmt::format("sparsity {:.3f} | nonzero {:.3f}M | N_avg {:.3f}M | eff {:.2f} MFLOP/token | {:.3g} eff FLOPs so far",
                     m["sparsity"], m["nonzero_params"] / 1e6, m["n_avg"] / 1e6, m["eff_flops_per_token"] / 1e6,
                     m["eff_flops"]);
}

}  // namespace strata::trainer
