// The trainer side of bert2BERT two-stage pre-training (recipe growth.two_stage, specs/growth.md
// §2.4). Stage 1 covers steps [start, start + stage1 steps), start being the in-run growth point
// (0 without an in-run growth event, e.g. after `strata grow`); stage 2 (the full model) follows.
// A stage-1 step draws depth i, runs the bottom i*block_layers blocks with the shared embeddings,
// final norm and head, and updates only blocks [(i-1)*block_layers, i*block_layers) (plus the shared
// parameters with train_shared). Every other parameter is frozen for the step: requires_grad off
// (backward stops below the trained blocks) and its gradient dropped, so the optimizer skips it — no
// update, no weight decay, its moments untouched.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "growth/two_stage.hpp"
#include "trainer/run_config.hpp"

namespace strata::trainer {

class TwoStageHook {
 public:
  // tokens_per_step is global (all dp ranks).
  TwoStageHook(const growth::TwoStageConfig& cfg, int64_t n_layer, int64_t start_step, int64_t train_steps,
               int64_t tokens_per_step);

  // At the start of `step` (after any growth event): in stage 1 draws the depth and freezes every
  // parameter outside the trained set; returns the number of bottom blocks the forward runs, 0 for
  // the full model (before the growth point and in stage 2).
  int64_t begin_step(int64_t step, std::vector<std::pair<std::string, at::Tensor>>& params);
  // After the step's backward: the frozen parameters require grad again (their gradients stay
  // undefined until the optimizer step is done, so it skips them).
  void end_backward();
  // The row entries of the last begun step: two_stage/stage (1 or 2) and two_stage/depth (blocks run);
  // nothing before the growth point.
  std::vector<std::pair<std::string, double>> metrics() const;

  // Checkpoints: the depth generator as rng.two_stage. A checkpoint without it loads only when it
  // was taken outside stage 1 (e.g. `strata grow`'s step 0); `where` names it in errors.
  void save_state(std::map<std::string, at::Tensor>& tensors) const;
  void load_state(const std::map<std::string, at::Tensor>& tensors, int64_t step, const std::string& where);

  int64_t start_step() const { return start_; }
  int64_t end_step() const { return end_; }

 private:
  growth::TwoStageConfig cfg_;
  int64_t n_layer_, start_, end_;
  growth::DepthSampler sampler_;
  std::vector<at::Tensor> frozen_;
  int64_t last_stage_ = 0, last_blocks_ = 0;
};

// growth.two_stage enabled: the hook for this run, after refusing what stage 1 does not support
// (names the key): tp, pp, dp > 1 or zero1, Sophia, sparsity. start_step is the growth point.
std::unique_ptr<TwoStageHook> make_two_stage_hook(const RunConfig& cfg, int64_t start_step, int64_t world_size);

}  // namespace strata::trainer
