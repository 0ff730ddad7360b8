#include "growth/two_stage.hpp"

#include <cmath>
#include <mutex>

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"
#include "growth/params.hpp"

namespace strata::growth {

int64_t prefix_count(int64_t n_layer, int64_t block_layers) {
  if (block_layers < 1 || n_layer % block_layers != 0)
    fail("growth.two_stage.block_layers = {} must divide model.n_layer = {} (stage 1 trains prefixes of i * block_layers "
         "blocks, i = 1..n_layer / block_layers)",
         block_layers, n_layer);
  return n_layer / block_layers;
}

int64_t stage1_steps(const TwoStageConfig& c, int64_t steps_after_start, int64_t tokens_per_step) {
  const bool by_tokens = c.stage1_tokens > 0, by_fraction = c.stage1_fraction > 0;
  if (by_tokens == by_fraction)
    fail("growth.two_stage: set exactly one of stage1_tokens ({}) and stage1_fraction ({}) to give stage 1's length",
         c.stage1_tokens, c.stage1_fraction);
  const int64_t steps = by_tokens ? (c.stage1_tokens + tokens_per_step - 1) / tokens_per_step
                                  : std::llround(c.stage1_fraction * static_cast<double>(steps_after_start));
  const char* key = by_tokens ? "stage1_tokens" : "stage1_fraction";
  if (steps < 1) fail("growth.two_stage.{} gives stage 1 no step ({} steps remain after the growth point)", key, steps_after_start);
  if (steps > steps_after_start)
    fail("growth.two_stage.{} gives stage 1 {} steps but only {} steps remain after the growth point (train.steps)", key, steps,
         steps_after_start);
  return steps;
}

bool trained_in_stage1(const std::string& name, int64_t depth, int64_t block_layers, bool train_shared) {
  const int64_t l = layer_of(name);
  if (l < 0) return train_shared;
  return l >= (depth - 1) * block_layers && l < depth * block_layers;
}

DepthSampler::DepthSampler(uint64_t seed, int64_t count)
    : gen_(at::make_generator<at::CPUGeneratorImpl>(seed)), count_(count) {
  if (count < 1) fail("growth.two_stage: no sub-model depth to sample (count {})", count);
}

int64_t DepthSampler::next() {
  std::lock_guard<std::mutex> lock(gen_.mutex());
  auto* g = at::check_generator<at::CPUGeneratorImpl>(gen_);
  // Rejection keeps the draw exactly uniform: values at or above the largest multiple of count_ are redrawn.
  const uint64_t n = static_cast<uint64_t>(count_), limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r = g->random64();
  while (r >= limit) r = g->random64();
  return 1 + static_cast<int64_t>(r % n);
}

at::Tensor DepthSampler::state() const { return gen_.get_state(); }

void DepthSampler::set_state(const at::Tensor& state) { gen_.set_state(state); }

}  // namespace strata::growth
