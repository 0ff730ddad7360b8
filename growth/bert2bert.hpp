// bert2BERT width growth (specs/growth.md §2.2-2.4): function-preserving initialisation (FPI) with
// one hidden map for every residual-stream tensor, a head map (head_dim unchanged; under GQA the
// query-head map is derived from the KV-head map so query copies keep their KV group) and an FFN
// map; AKI takes the new output units of layer l from layer l+1; depth then grows by stacking.
#pragma once
#include <string>

#include "growth/index_map.hpp"
#include "growth/params.hpp"
#include "models/config.hpp"

namespace strata::growth {

struct WidthMaps {
  IndexMap hidden, heads, kv_heads, ffn;  // heads/kv_heads over head indices
};

struct WidenOptions {
  std::string map = "circular";  // circular | random
  uint64_t seed = 0;
  bool aki = false;
};

// The maps from `source` to `target` width. Checks that the two configs share arch, vocab,
// max_seq_len, head_dim and the GQA group size.
WidthMaps make_width_maps(const models::ModelConfig& source, const models::ModelConfig& target, const std::string& kind,
                          uint64_t seed);

// Widens every tensor of `source` (a GPT-2, Llama or BERT parameter map of `source_layers` layers)
// with `maps`. A source with tied embeddings keeps them tied unless `untie_head`: then
// head.weight = E'/C^h (exact logits); kept tied, the logits are scaled by C^h (k for circular k x).
ParamMap widen(const ParamMap& source, int64_t source_layers, const WidthMaps& maps, int64_t head_dim, bool aki,
               bool untie_head);

}  // namespace strata::growth
