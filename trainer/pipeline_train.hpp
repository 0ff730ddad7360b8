// Pipeline parallelism inside `strata train` (parallel.pp > 1; specs/models.md §5).
//
// Every rank builds and initialises the full model with the run's seed (tp = 1 shapes), so every
// parameter starts with the bits a pp = 1 run has; it then keeps only the parameters of its own
// chunks (rank r holds chunks r, r + p, ...; the first rank the embeddings, the last the final
// norm and head, both ends the tied embedding) and frees the rest.
//
// One training step = one PipeSchedule run: its m micro-batches are the recipe's train.grad_accum
// micro-batches of train.micro_batch sequences each (dp rank d takes the same slices a pp = 1 run
// with dp ranks takes), so pp changes neither the global batch nor the data order. Afterwards:
// data-parallel averaging of this stage's gradients over the stage's dp group (one DataParallel
// per stage, reduced after the pipeline flush), the tied embedding's gradient summed between the
// two ends, then the global gradient norm over the pp group (each parameter counted once, the
// tied embedding on the first rank only) for clipping. The logged loss is the mean over
// micro-batches computed on the last stage (dp-averaged there) and broadcast over the pp group.
// With reweighting (reweighting.strategy != none) the last stage's loss hook weights the micro-batch's
// sequences over the last stage's dp group (one all-gather per micro-batch, in schedule order on
// every dp replica), as the pp = 1 loop does over its dp group; the weight stats go to every pp rank.
//
// With tensor parallelism (parallel.tp > 1, trainer/tensor_parallel_setup.hpp) the model was
// sharded over the mesh's tp group before the stages were cut, so each stage's layers run
// tensor-parallel over that stage's tp group; the pp group links the ranks of one (tp, dp)
// coordinate, so tp rank q of stage s talks to tp rank q of stage s +- 1. The activations crossing
// a stage boundary are the tp-replicated [micro_batch, seq, d] tensors, or with sequence
// parallelism each tp rank's own [micro_batch, seq / tp, d] slice (Megatron's scatter/gather
// optimisation: no gather before the send). The last stage's loss is the vocab-parallel
// cross-entropy; the tied embedding is vocab-sharded the same way on both ends, so the end-to-end
// gradient sum pairs equal shards; the clipping norm counts tp shards once and replicated tensors
// once (summed over tp, then over pp).
//
// Checkpoints stay layout-independent: disk checkpoints are written per rank (each stage its own
// parameters and optimizer state under the pp = 1 names; the tied embedding by the first stage;
// trainer/checkpoint_io.cpp), and loading reads what this rank holds, so a pp = 2 run resumes under
// pp = 1 and the other way round. gather_to_main (for in-memory snapshots, which hold whole
// tensors) sends every stage's tensors to world rank 0 point-to-point over rank 0's pp group.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/training_data.hpp"
#include "models/language_model.hpp"
#include "parallel/data_parallel.hpp"
#include "parallel/mesh.hpp"
#include "parallel/pipeline_runtime.hpp"
#include "reweighting/reweighter.hpp"
#include "trainer/pipeline_stage.hpp"
#include "trainer/run_config.hpp"
#include "trainer/tensor_parallel_setup.hpp"

namespace strata::trainer {

// Fails, naming the recipe keys, for combinations the pipeline path does not run.
void check_pipeline_supported(const RunConfig& cfg);

class PipelineTrainer {
 public:
  using NamedParams = std::vector<std::pair<std::string, at::Tensor>>;
  // `params` is the full model's parameter list (name order); on return it holds only this rank's.
  // `tp`: the model's tensor-parallel sharding (null for tp = 1), already applied to `model`.
  PipelineTrainer(const RunConfig& cfg, models::LanguageModel& model, const parallel::DeviceMesh& mesh, at::Device device,
                  NamedParams& params, const TensorParallelSetup* tp = nullptr);

  // Runs step `step`'s micro-batches through the schedule and reduces gradients (dp, tied ends).
  // Returns, on every rank, the sum over micro-batches of the mean cross-entropy (dp-averaged) as a
  // one-element tensor: what the pp = 1 loop accumulates.
  at::Tensor train_step(int64_t step, data::TrainingData& data, parallel::DataParallel* dp);
  // Sophia-G's curvature refresh through the same schedule: micro-batch a is batches[a] (read on
  // the first and the last stage) and the last stage's loss is loss(logits, a) (the sampled-label
  // cross-entropy, optim::GnbLabels; under tp from the vocabulary shard) in place of the data's
  // cross-entropy; gradients reduced as train_step reduces them (dp, tied ends). Returns, on every
  // rank, the sum over micro-batches of that loss (dp-averaged). Not timed for the bubble report.
  using LogitsLoss = std::function<at::Tensor(const at::Tensor& logits, int64_t micro)>;
  double loss_pass(std::vector<data::Batch> batches, const LogitsLoss& loss, parallel::DataParallel* dp);
  // Whether this rank counts parameter `name` in whole-model statistics (each parameter on one
  // stage; the tied embedding on the first).
  bool counts(const std::string& name) const;
  // Global gradient norm over the pipeline; scales every held gradient when above max_norm (> 0).
  double clip_grad_norm(double max_norm);
  // The validation loss through the pipeline (forward only), the same batches and order as pp = 1;
  // by_dataset receives "val_loss/<name>" entries. Every rank gets the result.
  double evaluate(data::TrainingData& data, std::vector<std::pair<std::string, double>>& by_dataset);
  // Collective over the pipeline ranks with dp (and tp) coordinate 0: world rank 0 receives the
  // other stages' "model.<name>" and "optim.<key>" tensors; other ranks get an empty map. `params`:
  // this rank's held parameters as saved (with tp: gathered to full tensors), in held order.
  std::map<std::string, at::Tensor> gather_to_main(const NamedParams& params,
                                                   const std::map<std::string, at::Tensor>& optim_state);

  const std::vector<parallel::LayerRange>& parts() const { return parts_; }
  const parallel::PipeSchedule& schedule() const { return runtime_->schedule(); }
  // The reweighting stats (reweight/entropy, ...) of the last train_step's micro-batches, the same on
  // every pp rank; empty without reweighting or during its burn-in. Clears them.
  std::vector<std::pair<std::string, double>> take_reweight_stats() { return std::move(reweight_row_); }
  // Pipeline time of the steps so far on this rank (the first excluded): run_step's wall time and
  // the forwards/backwards in it.
  double wall_seconds() const { return wall_s_; }
  double compute_seconds() const { return compute_s_; }

 private:
  const RunConfig& cfg_;
  models::LanguageModel& model_;
  std::shared_ptr<parallel::ProcessGroup> pp_, dp_;
  const TensorParallelSetup* tp_ = nullptr;  // parallel.tp > 1: vocab-parallel loss, tp-aware clipping norm
  std::vector<int64_t> act_shape_;           // what crosses a stage boundary
  bool on_main_line_;  // dp (and tp) coordinate 0: takes part in checkpoint gathers
  at::Device device_;
  std::vector<parallel::LayerRange> parts_;
  NamedParams held_;
  std::vector<at::Tensor> norm_params_;  // held, tied embedding only on the first rank
  std::vector<at::Tensor> tied_;         // tied embedding on both ends
  std::unique_ptr<parallel::PipeRuntime> runtime_;
  std::unique_ptr<ModelPipeStage> stage_;
  std::vector<at::Tensor> logged_;  // per micro-batch mean cross-entropy (last stage)
  int64_t current_mb_ = 0;
  int64_t current_step_ = 0;                              // the step the loss hook weights for
  std::unique_ptr<reweighting::Reweighter> reweighter_;   // reweighting.strategy != none (last stage's dp group)
  reweighting::StatsMeter reweight_stats_;                // last stage: this step's micro-batches
  std::vector<std::pair<std::string, double>> reweight_row_;
  double wall_s_ = 0, compute_s_ = 0;
  int64_t steps_run_ = 0;
  // After the last step: every pipeline rank's idle share of run_step's wall time (1 - compute /
  // wall, the first step excluded), logged by pp rank 0 beside the closed-form bubble.
  void log_bubble();
  // The part of train_step and loss_pass that runs the schedule on `batches` and reduces the
  // gradients; returns the summed loss on every rank.
  double run_schedule(std::vector<data::Batch> batches, parallel::DataParallel* dp, bool timed);
  LogitsLoss custom_loss_;              // loss_pass: replaces the last stage's loss while set
  bool fused_loss_ = false;             // train.fused_loss applies (trainer/fused_loss.hpp)
  std::vector<std::string> tied_names_;  // the tied embedding's names (held by both ends)
  bool first_() const { return pp_->rank() == 0; }
  bool last_() const { return pp_->rank() == pp_->size() - 1; }
};

}  // namespace strata::trainer
