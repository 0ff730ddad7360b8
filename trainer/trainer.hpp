// The training loop of one process: data, model, optimizer, schedule, evaluation, metrics and
// checkpoints wired together from a RunConfig.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>

#include "checkpoint/async_saver.hpp"
#include "checkpoint/checkpoint.hpp"
#include "checkpoint/sliced.hpp"
#include "data/batch.hpp"
#include "data/dataset.hpp"
#include "data/training_data.hpp"
#include "models/language_model.hpp"
#include "optim/optimizer.hpp"
#include "parallel/data_parallel.hpp"
#include "parallel/mesh.hpp"
#include "parallel/runtime.hpp"
#include "reweighting/reweighter.hpp"
#include "sparsity/sparsifier.hpp"
#include "trainer/checkpoint_slices.hpp"
#include "trainer/metrics.hpp"
#include "trainer/pipeline_train.hpp"
#include "trainer/run_config.hpp"
#include "trainer/step_guard.hpp"
#include "trainer/snapshot_hook.hpp"
#include "trainer/tensor_parallel_setup.hpp"
#include "trainer/two_stage_hook.hpp"

namespace strata::trainer {

struct TrainResult {
  int64_t steps_done = 0;
  double final_loss = 0, final_val_loss = 0;
  std::vector<double> losses;  // per step run in this invocation (NaN for a skipped step)
  bool preempted = false;      // stopped early by SIGTERM/SIGUSR1 after writing a checkpoint
};

class Trainer {
 public:
  // resume = true continues from the newest checkpoint in <run.dir>/checkpoints if there is one.
  Trainer(RunConfig cfg, bool resume);
  // Trains until train.steps, or stops (after a checkpoint) once `stop_after` steps are done
  // when stop_after > 0, as a preempted run would.
  TrainResult run(int64_t stop_after = 0);

  models::LanguageModel& model() { return *model_; }
  double evaluate();

  // The complete training state after `step` optimizer steps (params, optimizer, RNG, data
  // position, schedules, growth state): what disk checkpoints and in-memory snapshots hold, so both
  // restore the same run. Collective under ZeRO-1 (every rank calls it). The tensors alias the live
  // ones: copy them before the next optimizer step changes them.
  checkpoint::CheckpointState capture_state(int64_t step);
  // Loads a captured state (a disk checkpoint or a snapshot); `where` names it in errors.
  // load_optimizer = false leaves the optimizer alone (ZeRO-1 sliced restore loads it itself);
  // local_model = true: the model.* tensors are already this rank's tp parts (per-rank restore).
  void restore_state(const checkpoint::CheckpointState& st, const std::string& where, bool load_optimizer = true,
                     bool local_model = false);
  // In-memory snapshots under tp, pp or ZeRO-1 (trainer/snapshot_state.cpp): this rank's OWN state
  // (local parameters, its optimizer state as held, its RNG streams, the run state), no collectives;
  // restored only by the same rank of the same layout (snapshot_layout(), checked by SnapshotHook).
  checkpoint::CheckpointState capture_local_state(int64_t step);
  void restore_local_state(const checkpoint::CheckpointState& st, const std::string& where);
  snapshot::RankLayout snapshot_layout() const;

 private:
  // Disk checkpoints (trainer/checkpoint_io.cpp): synchronous or asynchronous (checkpoint.async);
  // under tp, pp or ZeRO-1 every rank writes its own model/optimizer slices in the sliced format.
  void save(int64_t step);
  void wait_for_saves();  // the asynchronous save in flight is committed (all ranks); rethrows its error
  bool sliced_optimizer() const;
  void sync_zero1_pieces();  // ZeRO-1: this rank's optimizer pieces take the (just loaded) parameter values
  void capture_sliced(int64_t step, checkpoint::CheckpointState& st, std::vector<checkpoint::OwnedSlice>& slices);
  checkpoint::CheckpointState capture_state(int64_t step, std::map<std::string, at::Tensor> opt_state);
  // Step, recipe, RNG, growth/sparsity state and meta: what is not model.* / optim.* (no collectives).
  void add_run_state(int64_t step, checkpoint::CheckpointState& st);
  // Under tp, pp or ZeRO-1 every rank writes its own model/optimizer slices
  // (trainer/checkpoint_slices.hpp) instead of gathering them to rank 0.
  bool per_rank_checkpoints() const;
  std::map<std::string, LocalPlacement> param_placements() const;  // of params_, for per-rank checkpoints
  std::map<std::string, at::Tensor> rng_streams() const;  // this rank's per-layout dropout generator states
  void restore_rng_streams(const checkpoint::CheckpointReader& r, const std::string& dir);
  std::unique_ptr<checkpoint::AsyncSaver> saver_;
  std::string save_nonce_;  // sliced saves: rank 0's value, names the shared temporary directory
  int64_t save_count_ = 0, ckpt_saves_ = 0;
  double ckpt_blocked_s_ = 0, ckpt_final_wait_s_ = 0;  // time save() blocked training; the final wait
  // train.on_nonfinite = rollback: restores the newest checkpoint (all ranks) and marks step `done`'s
  // batch to be skipped; false (with a log line) when there is no checkpoint to go back to.
  bool rollback_before(int64_t done);
  std::unique_ptr<StepGuard> guard_;  // non-finite steps and preemption, agreed by all ranks
  void restore(const std::string& dir);
  // Model growth (recipe `growth:`, trainer/growth_event.cpp): the run trains growth_source_ until
  // growth_step_, then grows into cfg_.model; growth_meta_ (the map used) goes into checkpoints.
  void setup_growth(bool resume);
  void grow_now(int64_t step);
  bool growth_pending_ = false;
  int64_t growth_step_ = -1;
  models::ModelConfig growth_source_;
  std::map<std::string, std::string> growth_meta_;
  // growth.two_stage (trainer/two_stage_hook.hpp): in stage 1, the step's forward runs the bottom
  // prefix_blocks_ blocks only (0 = the full model).
  std::unique_ptr<TwoStageHook> two_stage_;
  int64_t prefix_blocks_ = 0;
  // train.fused_loss where it applies (tp = 1, a plain output head, no reweighting; trainer/fused_loss.hpp):
  // the head and the cross-entropy run as models::linear_cross_entropy, never holding [N, vocab] logits.
  // Under pp the pipeline's last stage does the same (PipelineTrainer asks fused_loss_blocker too).
  bool fused_loss_ = false;
  bool use_fused_loss();  // decides fused_loss_ at setup, warning when the recipe's request cannot apply
  at::Tensor loss_of(const data::Batch& b, bool twice_differentiable = false);  // true: Sophia-H under tp
  // The training loss of one micro-batch at `step`: loss_of, or with reweighting the weighted loss;
  // `logged` receives the plain mean cross-entropy (detached) for the step's logged loss.
  at::Tensor train_loss_of(const data::Batch& b, int64_t step, at::Tensor& logged);
  // Sophia's curvature refresh after `step` (optim/hessian.hpp); returns metrics to log.
  std::vector<std::pair<std::string, double>> refresh_hessian(int64_t step);

  RunConfig cfg_;
  at::Device device_{at::kCPU};
  std::shared_ptr<models::LanguageModel> model_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::unique_ptr<optim::Optimizer> opt_;
  std::unique_ptr<data::TrainingData> data_;  // the train mixture and each dataset's validation set
  std::unique_ptr<data::TokenDataset> train_ds_;  // the first dataset's train split
  std::vector<std::pair<std::string, double>> val_by_dataset_;  // the last evaluation, per dataset
  // Sophia: the refresh batches come from their own sampler seed (the training order is unchanged)
  // and labels/probes from their own generator (saved in checkpoints as rng.hessian).
  std::unique_ptr<data::BatchLoader> hessian_loader_;
  at::Generator hessian_gen_;
  int64_t start_step_ = 0;
  // Distributed runtime (a one-rank world for plain runs), its mesh, and data parallelism when
  // dp > 1 (or parallel.zero1). Rank 0 writes metrics and checkpoints.
  std::shared_ptr<parallel::Runtime> runtime_;
  std::unique_ptr<parallel::DeviceMesh> mesh_;
  std::unique_ptr<parallel::DataParallel> dp_;
  std::vector<at::Tensor> clip_params_;              // what grad-norm clipping sees (ZeRO-1: this rank's shard)
  parallel::ProcessGroup* clip_group_ = nullptr;     // and over which ranks the norm is summed
  bool is_main() const { return runtime_->world().is_main(); }
  std::unique_ptr<TensorParallelSetup> tp_;  // parallel.tp > 1 (trainer/tensor_parallel_setup.hpp)
  std::unique_ptr<reweighting::Reweighter> reweighter_;  // reweighting.strategy != none
  reweighting::StatsMeter reweight_stats_;                 // weight stats of the micro-steps since the last row
  std::unique_ptr<sparsity::Sparsifier> sparsifier_;      // sparsity.method != none (trainer/sparsity_hook.hpp)
  double dp_backward_s_ = 0;                          // backward compute of the final micro-batches
  std::unique_ptr<SnapshotHook> snapshot_;            // snapshot.enabled: in-memory snapshots (trainer/snapshot_hook.hpp)
  std::unique_ptr<PipelineTrainer> pipe_;  // parallel.pp > 1: this rank's stage (trainer/pipeline_train.hpp)
};

// Picks cpu or cuda for train.device = auto|cpu|cuda and sets the intra-op thread count.
at::Device setup_device(const TrainSection& t);

}  // namespace strata::trainer
