// The tiny end-to-end recipe of the trainer tests (2-layer byte GPT, 4 x 2 micro-batches of 32 tokens),
// on a dataset from tiny_dataset.hpp; `extra` are further --set style overrides.
#pragma once
#include <string>
#include <vector>

#include "trainer/recipe.hpp"

namespace strata::testing {

inline trainer::RunConfig tiny_recipe(const std::string& data, const std::string& run_dir, int64_t steps,
                                      std::vector<std::string> extra = {}) {
  extra.insert(extra.begin(), {"data.path=" + data, "run.dir=" + run_dir, "train.steps=" + std::to_string(steps)});
  return trainer::load_recipe_text(R"(
model: {n_layer: 2, d_model: 64, n_head: 4, vocab_size: 262, max_seq_len: 64}
train: {micro_batch: 4, grad_accum: 2, seq_len: 32, log_every: 10, eval_every: 0, eval_batches: 2, threads: 2}
optim: {lr: 0.003, weight_decay: 0.1}
schedule: {warmup_steps: 5}
)",
                                   "tiny.yaml", extra);
}

}  // namespace strata::testing
