// Loss-based sample reweighting settings from the recipe's `reweighting:` section
// (specs/reweighting.md). strategy = none keeps the trainer's plain mean cross-entropy.
#pragma once
#include <cstdint>
#include <string>

namespace strata::reweighting {

struct ReweightConfig {
  std::string strategy = "none";  // none | uniform | linupper | quadratic | extremes (registry names)
  double r = 0.4;                 // KL temperature (the reference's kl_reg); r -> inf gives uniform weights
  double r_start = 0.0;           // > 0: r falls log-linearly from r_start to r over r_warmup_steps
  int64_t r_warmup_steps = 0;     // counted from the end of the burn-in
  int64_t burn_in_steps = 1000;   // steps of plain mean loss before reweighting starts
  double delta = 1.0;             // losses are normalised to [-delta, delta]
  bool token_weighted = false;    // false: L_k = W sum_i w_i l_i (README form); true: the GPT-2 trainer's
                                  // form W b sum_i w_i (n_i / sum_j n_j) l_i (rows of unequal length)
};

}  // namespace strata::reweighting
