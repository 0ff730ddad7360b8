// The trainer's side of sparse pre-training (recipe `sparsity:`, sparsity/sparsifier.hpp): builds
// the Sparsifier for a run, checks what it cannot be combined with yet, records the prunable set
// (log + <run.dir>/sparsity_prunable.txt + checkpoint meta), and rebuilds the optimizer fresh when
// the dense phase starts.
#pragma once
#include <memory>
#include <string>

#include "models/language_model.hpp"
#include "optim/optimizer.hpp"
#include "sparsity/sparsifier.hpp"
#include "trainer/run_config.hpp"

namespace strata::trainer {

// nullptr when sparsity.method = none. dp_size: data-parallel degree (global tokens per step).
std::unique_ptr<sparsity::Sparsifier> make_trainer_sparsifier(const RunConfig& cfg, models::LanguageModel& model,
                                                              int64_t dp_size, bool is_main);
// A fresh optimizer over the same parameter groups (SPDF's dense fine-tuning phase).
std::unique_ptr<optim::Optimizer> fresh_optimizer(const optim::Optimizer& old, const RunConfig& cfg, int64_t dp_size);
// "sparsity 0.500 | N_avg 2.91M | eff 17.3 MFLOP/token | 1.2e+13 FLOPs" for the log line.
std::string sparsity_log_line(const sparsity::Sparsifier& sp);

}  // namespace strata::trainer
