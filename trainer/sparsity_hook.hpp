// The trainer's side of sparse pre-training (recipe `sparsity:`, sparsity/sparsifier.hpp): builds
// the Sparsifier for a run, checks what it cannot be combined with yet, records the prunable set
// (log + <run.dir>/sparsity_prunable.txt + checkpoint meta), and restarts the optimizer fresh when
// the dense phase starts. With parallel.tp > 1 every prunable weight carries its tp layout (from the
// TensorParallelPlan) and thresholds are computed over the tp group; with parallel.zero1 the
// optimizer's pieces are masked (optim::Optimizer::visit_step_slices). With parallel.pp > 1 each
// stage sparsifies the prunable matrices it holds (pp = 1 names, so static masks and per-matrix
// thresholds are pp = 1's) while the accounting, taken before the pipeline cuts the model, covers the
// whole tp = 1 model, so metrics, the log line and the gradual plan equal pp = 1's.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/language_model.hpp"
#include "optim/optimizer.hpp"
#include "sparsity/sparsifier.hpp"
#include "trainer/run_config.hpp"

namespace strata::trainer {

class TensorParallelSetup;

// The whole tp = 1 model's accounting: every parameter and every prunable matrix at full size,
// dense FLOPs per token, global tokens per step (dp_size: the data-parallel degree). Call it while
// `model` still holds every parameter, i.e. before the pipeline keeps only this stage's.
// tp: the model's tensor-parallel sharding (null for tp = 1), already applied to `model`.
sparsity::Accounting sparsity_accounting(const RunConfig& cfg, models::LanguageModel& model, int64_t dp_size,
                                         const TensorParallelSetup* tp = nullptr);
// nullptr when sparsity.method = none. `held`: the parameters this rank trains (its pipeline
// stage's; all of them without pp); the prunable matrices among them are sparsified. `acc` from
// sparsity_accounting.
std::unique_ptr<sparsity::Sparsifier> make_trainer_sparsifier(const RunConfig& cfg, models::LanguageModel& model,
                                                              sparsity::Accounting acc,
                                                              const std::vector<std::pair<std::string, at::Tensor>>& held,
                                                              bool is_main, const TensorParallelSetup* tp = nullptr);
// A fresh optimizer over the same parameter groups (SPDF's dense fine-tuning phase); under ZeRO-1
// the same pieces with a fresh inner optimizer.
void restart_optimizer(std::unique_ptr<optim::Optimizer>& opt, const RunConfig& cfg, int64_t dp_size);
// "sparsity 0.500 | N_avg 2.91M | eff 17.3 MFLOP/token | 1.2e+13 FLOPs" for the log line.
std::string sparsity_log_line(const sparsity::Sparsifier& sp);

}  // namespace strata::trainer
