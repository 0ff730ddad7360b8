// One growth operator applied from configs: the source and target model shapes plus the recipe's
// `growth:` section. Pure function on parameter maps; the map used is returned for the record.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "growth/bert2bert.hpp"
#include "growth/config.hpp"
#include "growth/params.hpp"
#include "models/config.hpp"

namespace strata::growth {

struct GrowthRecord {
  std::string op;
  std::vector<int64_t> layers;       // target layer i <- (widened) source layer layers[i]
  std::optional<WidthMaps> width;    // bert2bert only
  // As checkpoint metadata: growth.operator, growth.layers, growth.map.{hidden,heads,kv_heads,ffn}.
  std::map<std::string, std::string> meta() const;
};

struct GrowResult {
  ParamMap params;
  GrowthRecord record;
};

// The small model a run with `growth:` starts from: g_stack divides n_layer by factor (or uses
// the largest entry of growth.layers + 1); bert2bert divides d_model, n_head, n_kv_head and an
// explicit d_ff by factor and takes growth.source_n_layer (0 = the target's depth).
models::ModelConfig source_config(const models::ModelConfig& target, const GrowthConfig& g);

GrowResult grow(const ParamMap& source, const models::ModelConfig& source_cfg, const models::ModelConfig& target_cfg,
                const GrowthConfig& g);

}  // namespace strata::growth
