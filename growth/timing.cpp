#include "growth/timing.hpp"

#include <cmath>
#include <stdexcept>

#include "core/error.hpp"

namespace strata::growth {

double growth_tokens_auto(double n, double d) {
  if (!(n > 0) || !(d > 0)) fail("growth.at_tokens = auto needs positive parameters and tokens (N = {}, D = {})", n, d);
  const double c = 6.0 * n * d;
  return std::pow(10.0, 0.88 * std::log10(n) + 163.27 / std::log10(c) - 5.74);
}

int64_t growth_step(const std::string& at_tokens, double target_params, int64_t tokens_per_step, int64_t total_steps) {
  double tokens = 0;
  if (at_tokens == "auto") {
    tokens = growth_tokens_auto(target_params, static_cast<double>(tokens_per_step) * static_cast<double>(total_steps));
  } else {
    size_t used = 0;
    try {
      tokens = std::stod(at_tokens, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != at_tokens.size() || !(tokens >= 0))
      fail("growth.at_tokens = '{}': expected auto or a non-negative token count", at_tokens);
  }
  const auto step = static_cast<int64_t>(std::ceil(tokens / static_cast<double>(tokens_per_step)));
  if (step < 1 || step >= total_steps)
    fail("growth.at_tokens = {} gives {:.4g} tokens = step {}, outside the run's steps 1..{} ({} tokens per step){}", at_tokens,
         tokens, step, total_steps - 1, tokens_per_step,
         at_tokens == "auto" ? "; the fitted formula is meant for large models, set growth.at_tokens to a count" : "");
  return step;
}

}  // namespace strata::growth
