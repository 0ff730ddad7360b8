// Sparse pre-training settings from the recipe's `sparsity:` section (specs/sparsity.md).
// method = none keeps training dense.
#pragma once
#include <cstdint>
#include <string>

namespace strata::sparsity {

struct SparsityConfig {
  std::string method = "none";   // none | static (SPDF: random masks from step 0) | gradual (magnitude pruning)
  double sparsity = 0.5;         // target fraction of zeros in every prunable matrix
  double start_fraction = 0.25;  // gradual: the pruning window, as fractions of the density-weighted
  double end_fraction = 0.75;    //   training compute (spec §2.2)
  int64_t prune_every = 10;      // gradual: steps between pruning events inside the window
  int64_t dense_from_step = -1;  // >= 0: from this step masks are dropped and the optimizer restarts
                                 //   fresh (SPDF's dense fine-tuning phase); -1 = never
  int64_t seed = -1;             // static masks: seed mixed with each parameter's name; -1 = run.seed
};

}  // namespace strata::sparsity
