// Sliced checkpoints (manifest version 2): every rank writes the pieces of tensors it owns to its
// own file rank_<r>.bin, in parallel; one global manifest.pb records each tensor's global shape and
// every slice (file, offset, nbytes, dtype, CRC32C, per-chunk CRC32C, region). Layout:
//   <root>/.tmp_step_<N>.<nonce>/   rank_<r>.bin, manifest.part_<r>.pb (each rank, written atomically)
//   <root>/step_<N>/                rank 0 waits for every part, merges them into manifest.pb (checking
//                                   that each tensor's slices tile it exactly), renames the directory
// so a step_<N> directory that exists is complete. No collectives are used: the parts on a shared
// file system are the rendezvous, so a background thread can commit while training goes on.
// CheckpointReader reads any region of any tensor from version 1 or 2 checkpoints, touching only
// the slices (and, where chunk checksums exist, only the chunks) that overlap it.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/region.hpp"

namespace strata::checkpoint {

// A piece of tensor `name` that this rank owns: `data` holds the region's elements (box shape, or 1-D
// for a flat range), any device.
struct OwnedSlice {
  std::string name;
  std::vector<int64_t> global_shape;
  Region region;
  at::Tensor data;
};

struct SliceSaveOptions {
  int64_t rank = 0, world = 1;
  std::string nonce = "0";           // equal on every rank of one save (names the temporary directory)
  uint64_t chunk_bytes = 1u << 20;   // granularity of the per-chunk checksums
  std::chrono::milliseconds wait{std::chrono::minutes(10)};  // rank 0: how long to wait for the other parts
};

// This rank's part of the sliced checkpoint of state.step: `state.tensors` (whole tensors this rank
// writes) and `slices`. Rank 0's state also gives config_yaml and meta. Rank 0 returns the published
// directory after merging every rank's part; other ranks return an empty path once their part is written.
std::filesystem::path save_sliced(const std::filesystem::path& root, const CheckpointState& state,
                                  const std::vector<OwnedSlice>& slices, const SliceSaveOptions& o = {});

struct SliceInfo {
  std::string file;
  uint64_t offset = 0, nbytes = 0;
  uint32_t crc32c = 0;
  uint64_t chunk_bytes = 0;
  std::vector<uint32_t> chunk_crc32c;
  Region region;
  int64_t rank = 0;
};

struct TensorInfo {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<SliceInfo> slices;
};

class CheckpointReader {
 public:
  // Parses and checks the manifest (every slice inside its tensor, slices disjoint and covering it,
  // sizes consistent); the data is read on demand.
  explicit CheckpointReader(const std::filesystem::path& dir);
  int64_t step() const { return step_; }
  int version() const { return version_; }
  int64_t world() const { return world_; }
  const std::string& config_yaml() const { return config_yaml_; }
  const std::map<std::string, std::string>& meta() const { return meta_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo& info(const std::string& name) const;
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  at::ScalarType scalar_type(const std::string& name) const;  // the tensor's dtype

  // The region's elements (box shape, or 1-D for a flat range) on CPU; reads the overlapping slices
  // only and verifies their checksums.
  at::Tensor read(const std::string& name, const Region& region) const;
  at::Tensor read_full(const std::string& name) const;
  // Reads every byte of one slice and checks size and CRC32C; empty string when good.
  std::string check_slice(const std::string& name, size_t slice) const;
  uint64_t bytes_read() const { return bytes_read_; }  // data bytes read so far

 private:
  // Bytes [lo, hi) of the slice, verified (chunks rounded out; whole slice without chunk checksums),
  // placed at their offsets in a buffer of the slice's size.
  void load(const TensorInfo& t, size_t s, uint64_t lo, uint64_t hi, char* buf) const;
  void read_box(const TensorInfo& t, const Region& box, at::Tensor& out) const;
  std::string where(const TensorInfo& t, size_t s) const;
  // Every slice of `t` lies inside its file (before anything of the tensor's size is allocated).
  void check_extents(const TensorInfo& t) const;
  uint64_t file_size(const TensorInfo& t, size_t s) const;

  std::filesystem::path dir_;
  int version_ = 1;
  int64_t step_ = 0, world_ = 1;
  std::string config_yaml_;
  std::map<std::string, std::string> meta_;
  std::map<std::string, TensorInfo> tensors_;
  mutable uint64_t bytes_read_ = 0;
  mutable std::map<std::string, uint64_t> file_sizes_;
};

// load_checkpoint for version 2: every tensor assembled whole.
CheckpointState load_sliced_checkpoint(const std::filesystem::path& dir);

}  // namespace strata::checkpoint
