// Parts of a tensor as sliced checkpoints store and read them: a box (per-dimension start and
// length) or a flat range of the row-major elements (ZeRO-style flattened shards).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::checkpoint {

struct Region {
  bool flat = false;
  std::vector<int64_t> start, length;  // box: one entry per dimension
  int64_t flat_start = 0, flat_length = 0;

  static Region box(std::vector<int64_t> start, std::vector<int64_t> length);
  static Region range(int64_t start, int64_t length);
  static Region whole(const std::vector<int64_t>& shape);
  int64_t numel() const;
  std::string str() const;  // "[0:4, 2:6]" or "flat[10:20]"
};

int64_t numel_of(const std::vector<int64_t>& shape);
// Empty string when `r` lies inside a tensor of `shape`; otherwise what is wrong.
std::string region_error(const Region& r, const std::vector<int64_t>& shape);
// The row-major linear index of a multi-index.
int64_t linear_index(const std::vector<int64_t>& index, const std::vector<int64_t>& shape);
// Splits the flat range [start, start + length) of a tensor of `shape` into boxes, in order; each box
// is contiguous in row-major order (fixed leading indices, one range, full trailing dimensions).
std::vector<Region> flat_to_boxes(int64_t start, int64_t length, const std::vector<int64_t>& shape);
// Box intersection; false when empty.
bool intersect(const Region& a, const Region& b, Region& out);

}  // namespace strata::checkpoint
