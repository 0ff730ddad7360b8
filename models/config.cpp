#include "models/config.hpp"

namespace strata::models {

int64_t ModelConfig::ffn_hidden() const {
  if (d_ff > 0) return d_ff;
  if (arch != "llama") return 4 * d_model;
  // Llama's SwiGLU rule: 2/3 of 4d, optional multiplier, rounded up to multiple_of.
  int64_t h = static_cast<int64_t>(2 * 4 * d_model / 3);
  if (ffn_dim_multiplier > 0) h = static_cast<int64_t>(ffn_dim_multiplier * h);
  return multiple_of * ((h + multiple_of - 1) / multiple_of);
}

}  // namespace strata::models
