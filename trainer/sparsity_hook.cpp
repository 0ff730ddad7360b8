#include "trainer/sparsity_hook.hpp"

#include <filesystem>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "models/flops.hpp"
#include "optim/zero1.hpp"
#include "trainer/tensor_parallel_setup.hpp"

namespace strata::trainer {

std::unique_ptr<sparsity::Sparsifier> make_trainer_sparsifier(const RunConfig& cfg, models::LanguageModel& model,
                                                              int64_t dp_size, bool is_main,
                                                              const TensorParallelSetup* tp) {
  const auto& sc = cfg.sparsity;
  if (sc.method == "none") return nullptr;
  if (cfg.parallel.pp > 1)
    fail("sparsity.method = {} is not wired through the pipeline (parallel.pp = {}): the sparsity metrics and the masks "
         "in checkpoints would cover this stage's matrices only; set parallel.pp = 1 (tp, dp and zero1 are supported)",
         sc.method, cfg.parallel.pp);
  if (cfg.growth.enabled()) fail("sparsity.method = {} cannot be combined with growth: (the prunable set changes shape)", sc.method);
  if (sc.start_fraction >= sc.end_fraction)
    fail("sparsity.start_fraction = {} must be below sparsity.end_fraction = {}", sc.start_fraction, sc.end_fraction);
  sparsity::Accounting acc;
  acc.total_params = 0;  // the tp = 1 model's count: a tp shard counts at its full size
  for (const auto& p : model.parameters()) {
    const auto* l = tp ? tp->plan().layout_of(p) : nullptr;
    acc.total_params += l ? p.numel() / l->local * l->full : p.numel();
  }
  acc.flops_per_token = models::flops_per_token(cfg.model, cfg.train.seq_len);
  acc.tokens_per_step = static_cast<double>(cfg.train.micro_batch * cfg.train.grad_accum * cfg.train.seq_len * dp_size);
  auto prunable = sparsity::prunable_set(model);
  std::shared_ptr<parallel::ProcessGroup> shard_group;
  if (tp) {  // each weight as tp rank r's part of the full matrix; thresholds over the tp group
    shard_group = tp->plan().ctx->group;
    for (auto& p : prunable)
      if (const auto* l = tp->plan().layout_of(p.weight))
        p.shard = sparsity::layout_from_starts(l->dim, l->full, l->local, l->starts, shard_group->rank());
  }
  auto seeded = sc;
  if (seeded.seed < 0) seeded.seed = cfg.run.seed;
  auto sp = std::make_unique<sparsity::Sparsifier>(seeded, std::move(prunable), cfg.train.steps, acc, shard_group);
  spdlog::info("sparsity: {} to {:.3f} over {} prunable matrices ({:.2f}M of {:.2f}M parameters){}", sc.method, sc.sparsity,
               sp->prunable().size(), sp->prunable_entries() / 1e6, acc.total_params / 1e6,
               sc.method == "gradual" ? fmt::format(", pruning steps {} -> {} (compute {:.0f}% -> {:.0f}%), every {} steps",
                                                    sp->plan().start_step, sp->plan().end_step, 100 * sc.start_fraction,
                                                    100 * sc.end_fraction, sc.prune_every)
                                      : std::string());
  if (sc.dense_from_step >= 0) spdlog::info("sparsity: dense fine-tuning (masks dropped, fresh optimizer) from step {}", sc.dense_from_step);
  spdlog::info("sparsity: prunable set {}", sp->prunable_list());
  if (is_main) {
    std::filesystem::create_directories(cfg.run.dir);
    std::string text;
    for (const auto& p : sp->prunable()) text += p.name + "\n";
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
