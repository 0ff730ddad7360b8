// Growth between a model, a parameter map and checkpoints: read a model's parameters, copy a
// grown map into a freshly built target model (every name and shape must match), and grow a
// checkpoint offline (`strata grow`).
#pragma once
#include <string>

#include "checkpoint/checkpoint.hpp"
#include "growth/grow.hpp"
#include "models/language_model.hpp"

namespace strata::growth {

ParamMap model_params(models::LanguageModel& model);
// Copies `grown` into `model`'s parameters; fails on a missing, extra or mis-shaped tensor.
void load_into(models::LanguageModel& model, const ParamMap& grown);

// Grows the "model.*" tensors of a checkpoint of `source_cfg` into `target_cfg` and returns the
// step-0 checkpoint of the target run (config `target_yaml`, the map in meta). Optimizer state:
// growth.optimizer = fresh writes none (the trainer starts new moments); carry (g_stack only)
// stacks the "optim.*" moments with the same layer list.
checkpoint::CheckpointState grow_checkpoint(const checkpoint::CheckpointState& source, const models::ModelConfig& source_cfg,
                                            const models::ModelConfig& target_cfg, const GrowthConfig& g,
                                            const std::string& target_yaml);

}  // namespace strata::growth
