// Recipe section `growth:` (specs/growth.md): grow a small model into the recipe's model during a
// run (or offline with `strata grow`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::growth {

// growth.two_stage: bert2BERT's two-stage pre-training (specs/growth.md §2.4). Stage 1 runs for
// stage1_tokens (or stage1_fraction of the steps left) from the growth point (step 0 without an
// in-run growth event): each step draws i uniformly from 1..n_layer/block_layers with its own
// generator (seeded by `seed`, kept in checkpoints as rng.two_stage), runs the bottom
// i*block_layers blocks with the shared embeddings, final norm and head, and updates only blocks
// [(i-1)*block_layers, i*block_layers) (plus the shared parameters when train_shared). Stage 2
// trains the full model.
struct TwoStageConfig {
  int64_t block_layers = 0;       // l_b; 0 = off (no stage 1)
  int64_t stage1_tokens = 0;      // stage 1 length in training tokens ...
  double stage1_fraction = 0.0;   // ... or as a fraction of the steps after the growth point (set one)
  int64_t seed = 0;               // seed of the depth generator
  bool train_shared = false;      // stage 1 also updates embeddings, final norm and head (paper: false)

  bool enabled() const { return block_layers > 0; }
};

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
  TwoStageConfig two_stage;           // growth.two_stage.*: bert2BERT two-stage pre-training (also without an operator)

  bool enabled() const { return !op.empty(); }
};

// growth.layers as read from YAML numbers; fails on a non-integer or negative entry.
std::vector<int64_t> layers_from(const std::vector<double>& numbers);

}  // namespace strata::growth
