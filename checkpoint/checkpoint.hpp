// Disk checkpoints: <root>/step_<N>/ holding tensors.bin and manifest.pb (protobuf, with a CRC32C
// per tensor). Written into a temporary directory, fsynced, then renamed into place, so a
// checkpoint directory that exists is complete. Loading verifies every checksum.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

namespace strata::checkpoint {

struct CheckpointState {
  int64_t step = 0;
  std::string config_yaml;
  std::map<std::string, at::Tensor> tensors;  // any device; stored as CPU bytes
  std::map<std::string, std::string> meta;
};

// Writes <root>/step_<state.step>; returns its path.
std::filesystem::path save_checkpoint(const std::filesystem::path& root, const CheckpointState& state);
// Reads and verifies a checkpoint directory (tensors come back on CPU).
CheckpointState load_checkpoint(const std::filesystem::path& dir);
// The complete checkpoint with the highest step under root, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& root);
// Deletes all but the last `keep` checkpoints, sparing every step that is a multiple of keep_every.
void apply_retention(const std::filesystem::path& root, int64_t keep, int64_t keep_every);

}  // namespace strata::checkpoint
