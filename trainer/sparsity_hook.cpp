#include "trainer/sparsity_hook.hpp"

#include <filesystem>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "models/flops.hpp"

namespace strata::trainer {

std::unique_ptr<sparsity::Sparsifier> make_trainer_sparsifier(const RunConfig& cfg, models::LanguageModel& model,
                                                              int64_t dp_size, bool is_main) {
  const auto& sc = cfg.sparsity;
  if (sc.method == "none") return nullptr;
  if (cfg.parallel.zero1)
    fail("sparsity.method = {} zeroes optimizer moments at pruned entries, which parallel.zero1's sharded state does "
         "not expose yet; set parallel.zero1 = false", sc.method);
  if (cfg.parallel.tp > 1 || cfg.parallel.pp > 1)
    fail("sparsity.method = {} is wired for data parallelism only (parallel.tp = {}, parallel.pp = {}); the masks of "
         "tensor-parallel shards (sparsity/select.hpp) are not connected to the trainer's tp checkpoints yet",
         sc.method, cfg.parallel.tp, cfg.parallel.pp);
  if (cfg.growth.enabled()) fail("sparsity.method = {} cannot be combined with growth: (the prunable set changes shape)", sc.method);
  if (sc.start_fraction >= sc.end_fraction)
    fail("sparsity.start_fraction = {} must be below sparsity.end_fraction = {}", sc.start_fraction, sc.end_fraction);
  sparsity::Accounting acc;
  acc.total_params = 0;
  for (const auto& p : model.parameters()) acc.total_params += p.numel();
  acc.flops_per_token = models::flops_per_token(cfg.model, cfg.train.seq_len);
  acc.tokens_per_step = static_cast<double>(cfg.train.micro_batch * cfg.train.grad_accum * cfg.train.seq_len * dp_size);
  auto sp = sparsity::make_sparsifier(sc, model, cfg.run.seed, cfg.train.steps, acc, nullptr);
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

std::unique_ptr<optim::Optimizer> fresh_optimizer(const optim::Optimizer& old, const RunConfig& cfg, int64_t dp_size) {
  auto opt = optim::make_optimizer(cfg.optim, old.groups());
  opt->set_tokens_per_step(static_cast<double>(cfg.train.micro_batch * cfg.train.grad_accum * cfg.train.seq_len * dp_size));
  return opt;
}

std::string sparsity_log_line(const sparsity::Sparsifier& sp) {
  std::map<std::string, double> m;
  for (const auto& [k, v] : sp.metrics()) m[k] = v;
  return fmt::format("sparsity {:.3f} | nonzero {:.3f}M | N_avg {:.3f}M | eff {:.2f} MFLOP/token | {:.3g} eff FLOPs so far",
                     m["sparsity"], m["nonzero_params"] / 1e6, m["n_avg"] / 1e6, m["eff_flops_per_token"] / 1e6,
                     m["eff_flops"]);
}

}  // namespace strata::trainer
