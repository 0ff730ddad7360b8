// When to grow (specs/growth.md §2.1): the G_stack paper's fitted guideline for the tokens d to
// train the small model, log10(d) = 0.88 log10(N) + 163.27 / log10(C) - 5.74, with N the target's
// parameters and C = 6 N D its total compute for a budget of D tokens.
#pragma once
#include <cstdint>
#include <string>

namespace strata::growth {

double growth_tokens_auto(double target_params, double target_tokens);

// growth.at_tokens ("auto" or a count) as the optimizer step at which to grow, for a run of
// `total_steps` steps of `tokens_per_step` tokens with a target of `target_params` parameters.
// Fails when the growth point falls outside the run.
int64_t growth_step(const std::string& at_tokens, double target_params, int64_t tokens_per_step, int64_t total_steps);

}  // namespace strata::growth
