// bert2BERT two-stage pre-training (specs/growth.md §2.4, recipe growth.two_stage), the parts that
// know no trainer: stage 1's length, which parameters a stage-1 step at depth i trains, and the
// depth generator.
#pragma once
#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "growth/config.hpp"

namespace strata::growth {

// The number of stage-1 sub-models, n_layer / block_layers; fails unless block_layers divides n_layer.
int64_t prefix_count(int64_t n_layer, int64_t block_layers);

// Stage 1's length in optimizer steps: ceil(stage1_tokens / tokens_per_step), or
// round(stage1_fraction * steps_after_start). Exactly one of the two must be set; fails (naming the
// key) on neither, both, zero steps, or more steps than remain.
int64_t stage1_steps(const TwoStageConfig& c, int64_t steps_after_start, int64_t tokens_per_step);

// Whether parameter `name` (LanguageModel::named_parameters(), "blocks.<l>." for layer l) is updated
// by a stage-1 step at depth i (1-based): the top block_layers blocks of the prefix, layers
// [(i-1)*block_layers, i*block_layers); the parameters outside the blocks (embeddings, final norm,
// head) only when train_shared.
bool trained_in_stage1(const std::string& name, int64_t depth, int64_t block_layers, bool train_shared);

// The depths of stage 1: i uniform in [1, count], one draw per step, from its own generator (a
// mt19937 CPU generator seeded with `seed`) whose state goes into checkpoints, so a resumed run
// draws the same sequence.
class DepthSampler {
 public:
  DepthSampler(uint64_t seed, int64_t count);
  int64_t next();
  at::Tensor state() const;
  void set_state(const at::Tensor& state);
  int64_t count() const { return count_; }

 private:
  at::Generator gen_;
  int64_t count_;
};

}  // namespace strata::growth
