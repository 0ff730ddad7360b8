// `strata export --format hf` and `strata import --hf`: Hugging Face directories (model.safetensors
// + config.json) <-> Strata checkpoints. Names and layouts come from models/hf.hpp; the file
// format from checkpoint/safetensors.hpp.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "models/config.hpp"

namespace strata::trainer {

// A checkpoint directory from a path that is either one (has manifest.pb) or a run directory
// (its newest checkpoint under checkpoints/).
std::filesystem::path resolve_checkpoint(const std::filesystem::path& run_or_checkpoint);

// Writes <out>/model.safetensors and <out>/config.json for parameters named as in the model.
void write_hf_dir(const models::ModelConfig& cfg, const std::map<std::string, at::Tensor>& params,
                  const std::filesystem::path& out);

struct HfModel {
  models::ModelConfig cfg;
  std::map<std::string, at::Tensor> params;  // Strata names, checked against the instantiated model
};
// Reads config.json and model.safetensors (or the shards listed in model.safetensors.index.json).
HfModel read_hf_dir(const std::filesystem::path& dir);

// The model of a run's newest checkpoint (or of a checkpoint directory) as an HF directory.
void export_hf(const std::filesystem::path& run_or_checkpoint, const std::filesystem::path& out);
// An HF directory as a Strata checkpoint directory `out` (model weights, no optimizer state) plus
// `out`/model.yaml: a recipe fragment (model section + train.init_from) to `include:`.
void import_hf(const std::filesystem::path& hf_dir, const std::filesystem::path& out);

// Copies the model.* tensors of a checkpoint (run or checkpoint directory) into `params`;
// every parameter must be present with the same shape. Used by train.init_from.
void load_model_weights(const std::filesystem::path& run_or_checkpoint,
                        const std::vector<std::pair<std::string, at::Tensor>>& params);

}  // namespace strata::trainer
