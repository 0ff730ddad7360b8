// What `strata ckpt inspect` and `strata ckpt verify` report about a checkpoint directory (version
// 1 or 2): the manifest as text, and a full read of every slice checking size and CRC32C.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace strata::checkpoint {

// Step, format, meta, and every tensor with global shape, dtype and slices (file, offset, bytes,
// region, rank, CRC32C); the caller adds a summary of the config.
std::string describe_checkpoint(const std::filesystem::path& dir);

struct VerifyReport {
  size_t tensors = 0, slices = 0;
  uint64_t bytes = 0;
  std::vector<std::string> problems;  // one per bad slice (or the manifest), naming tensor, slice and file
};
VerifyReport verify_checkpoint(const std::filesystem::path& dir);

}  // namespace strata::checkpoint
