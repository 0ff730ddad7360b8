// G_stack depth growth (specs/growth.md §2.1, §2.4): target layer i is a copy of source layer
// layers[i]; every other tensor is copied unchanged. Copies are fresh tensors (never aliases).
#pragma once
#include <cstdint>
#include <vector>

#include "growth/params.hpp"

namespace strata::growth {

// The default stacking list from L_s to L_t layers: the whole stack repeated k = L_t / L_s times
// ([0..L_s-1] x k); a remainder r = L_t - k*L_s copies the top r source layers (bert2BERT rule).
std::vector<int64_t> stacking_list(int64_t source_layers, int64_t target_layers);

// Stacks every key that names a layer ("blocks.<i>." anywhere in it, so optimizer-state keys such
// as "adamw.m.blocks.0.attn.wq.weight" work too). Fails if a list entry is not a source layer.
ParamMap g_stack(const ParamMap& source, int64_t source_layers, const std::vector<int64_t>& layers);

}  // namespace strata::growth
