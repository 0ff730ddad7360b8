#include "checkpoint/region.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace strata::checkpoint {

Region Region::box(std::vector<int64_t> start, std::vector<int64_t> length) {
  Region r;
  r.start = std::move(start);
  r.length = std::move(length);
  return r;
}

Region Region::range(int64_t start, int64_t length) {
  Region r;
  r.flat = true;
  r.flat_start = start;
  r.flat_length = length;
  return r;
}

Region Region::whole(const std::vector<int64_t>& shape) { return box(std::vector<int64_t>(shape.size(), 0), shape); }

int64_t Region::numel() const { return flat ? flat_length : numel_of(length); }

std::string Region::str() const {
  if (flat) return fmt::format("flat[{}:{}]", flat_start, flat_start + flat_length);
  std::string s = "[";
  for (size_t d = 0; d < start.size(); ++d) s += fmt::format("{}{}:{}", d ? ", " : "", start[d], start[d] + length[d]);
  return s + "]";
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

std::string region_error(const Region& r, const std::vector<int64_t>& shape) {
  constexpr int64_t kMax = int64_t(1) << 50;
  int64_t total = 1;
  for (auto s : shape) {
    if (s < 0 || s > kMax || (s > 0 && total > kMax / s)) return fmt::format("shape dimension {} is out of range", s);
    total *= s;
  }
  if (r.flat) {
    if (r.flat_start < 0 || r.flat_length < 0 || r.flat_start > total || r.flat_length > total - r.flat_start)
      return fmt::format("range {} is outside the tensor's {} elements", r.str(), total);
    return {};
  }
  if (r.start.size() != shape.size() || r.length.size() != shape.size())
    return fmt::format("region has {} start / {} length entries for a {}-dimensional tensor", r.start.size(), r.length.size(),
                       shape.size());
  for (size_t d = 0; d < shape.size(); ++d)
    if (r.start[d] < 0 || r.length[d] < 0 || r.start[d] > shape[d] || r.length[d] > shape[d] - r.start[d])
      return fmt::format("region {} leaves dimension {} of size {}", r.str(), d, shape[d]);
  return {};
}

int64_t linear_index(const std::vector<int64_t>& index, const std::vector<int64_t>& shape) {
  int64_t lin = 0;
  for (size_t d = 0; d < shape.size(); ++d) lin = lin * shape[d] + index[d];
  return lin;
}

namespace {

void split(int64_t a, int64_t b, const std::vector<int64_t>& shape, size_t d, std::vector<int64_t>& prefix,
           std::vector<Region>& out) {
  if (a >= b) return;
  const size_t nd = shape.size();
  auto push = [&](int64_t lo, int64_t hi) {  // dims < d fixed at prefix, dim d in [lo, hi), the rest full
    Region r;
    for (size_t k = 0; k < d; ++k) r.start.push_back(prefix[k]), r.length.push_back(1);
    if (d < nd) r.start.push_back(lo), r.length.push_back(hi - lo);
    for (size_t k = d + 1; k < nd; ++k) r.start.push_back(0), r.length.push_back(shape[k]);
    out.push_back(std::move(r));
  };
  if (d == nd) return push(0, 1);
  int64_t inner = 1;
  for (size_t k = d + 1; k < nd; ++k) inner *= shape[k];
  if (inner == 0) return;
  const int64_t i0 = a / inner, i1 = (b - 1) / inner;
  auto recurse = [&](int64_t i, int64_t lo, int64_t hi) {
    prefix.push_back(i);
    split(lo, hi, shape, d + 1, prefix, out);
    prefix.pop_back();
  };
  if (i0 == i1 && !(a % inner == 0 && b - a == inner)) return recurse(i0, a - i0 * inner, b - i0 * inner);
  int64_t first_full = i0, end_full = i1 + 1;
  if (a % inner != 0) {
    recurse(i0, a % inner, inner);
    first_full = i0 + 1;
  }
  if (b % inner != 0) end_full = i1;
  if (first_full < end_full) push(first_full, end_full);
  if (b % inner != 0) recurse(i1, 0, b - i1 * inner);
}

}  // namespace

std::vector<Region> flat_to_boxes(int64_t start, int64_t length, const std::vector<int64_t>& shape) {
  std::vector<Region> out;
  std::vector<int64_t> prefix;
  split(start, start + length, shape, 0, prefix, out);
  return out;
}

bool intersect(const Region& a, const Region& b, Region& out) {
  out = Region{};
  for (size_t d = 0; d < a.start.size(); ++d) {
    const int64_t lo = std::max(a.start[d], b.start[d]);
    const int64_t hi = std::min(a.start[d] + a.length[d], b.start[d] + b.length[d]);
    if (hi <= lo) return false;
    out.start.push_back(lo);
    out.length.push_back(hi - lo);
  }
  return true;
}

}  // namespace strata::checkpoint
