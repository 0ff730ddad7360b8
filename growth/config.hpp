// Recipe section `growth:` (specs/growth.md): grow a small model into the recipe's model during a
// run (or offline with `strata grow`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::growth {

struct GrowthConfig {
  std::string op;                     // "" (no growth) | g_stack | bert2bert   (key growth.operator)
  int64_t factor = 0;                 // g_stack: depth factor g; bert2bert: width factor (source = target / factor)
  int64_t source_n_layer = 0;         // bert2bert in a run: the small model's depth (0 = the target's)
  std::vector<double> layer_list;     // growth.layers: explicit stacking list, target layer i <- source
                                      // layer layer_list[i] (YAML numbers; layers_from checks them)
  std::string at_tokens = "auto";     // in a run: "auto" (spec's fitted formula) or a token count
  std::string map = "circular";       // bert2bert index maps: circular | random
  int64_t seed = 0;                   // seed of the random maps
  bool aki = false;                   // bert2bert: advanced knowledge initialisation instead of plain FPI
  std::string optimizer = "fresh";    // fresh (new moments) | carry (g_stack: stack the moments too)
  int64_t rewarm_steps = -1;          // lr re-warm after growth in a run: -1 = schedule.warmup_steps, 0 = none

  bool enabled() const { return !op.empty(); }
};

// growth.layers as read from YAML numbers; fails on a non-integer or negative entry.
std::vector<int64_t> layers_from(const std::vector<double>& numbers);

}  // namespace strata::growth
