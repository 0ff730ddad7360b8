// A CheckpointState as one flat byte buffer (what a snapshot slot holds):
//   8 bytes magic "STRSNAP1" | 8 bytes L | L bytes: the checkpoint Manifest (protobuf, the same
//   message disk checkpoints use; tensor offsets relative to the data) | the tensors' bytes.
// Deserializing checks every size against the buffer and names what is wrong.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "checkpoint/checkpoint.hpp"

namespace strata::snapshot {

// A state prepared for copying: the manifest is built and every tensor is a contiguous CPU tensor,
// so `write` only copies bytes (it is what the trainer's background thread runs).
class PreparedState {
 public:
  explicit PreparedState(const checkpoint::CheckpointState& st);
  uint64_t bytes() const { return total_; }
  int64_t step() const { return step_; }
  void write(uint8_t* dst) const;
  // Bytes [lo, hi) of what `write` would produce, into dst[0, hi - lo) (a dp rank's share).
  void write_range(uint8_t* dst, uint64_t lo, uint64_t hi) const;
  // CRC32C of the whole serialized buffer, computed piecewise without building it.
  uint32_t crc() const;

 private:
  int64_t step_ = 0;
  // The serialized buffer as consecutive pieces: the 16-byte prefix, the manifest, each tensor.
  template <class F>
  void for_each_piece(F&& f) const;
  uint8_t prefix_[16] = {};
  std::string manifest_;
  std::vector<at::Tensor> tensors_;
  uint64_t total_ = 0;
};

std::vector<uint8_t> serialize_state(const checkpoint::CheckpointState& st);
checkpoint::CheckpointState deserialize_state(const uint8_t* p, uint64_t n, const std::string& where);

}  // namespace strata::snapshot
