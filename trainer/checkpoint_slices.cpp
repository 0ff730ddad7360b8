#include "trainer/checkpoint_slices.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"

namespace strata::trainer {

checkpoint::Region LocalPlacement::global_box() const {
  std::vector<int64_t> start_v(global_shape.size(), 0), length = global_shape;
  if (dim >= 0) start_v[dim] = start, length[dim] = valid;
  return checkpoint::Region::box(std::move(start_v), std::move(length));
}

LocalPlacement placement_of(const std::vector<int64_t>& local_shape, const parallel::ShardLayout* layout, int64_t tp_rank) {
  LocalPlacement pl;
  pl.local_shape = pl.global_shape = local_shape;
  if (!layout) return pl;
  if (layout->dim < 0 || layout->dim >= static_cast<int64_t>(local_shape.size()) || local_shape[layout->dim] != layout->local)
    fail("checkpoint: a tensor of shape [{}] is not a {}-element tp shard of dimension {} (tp rank {})",
         fmt::join(local_shape, ", "), layout->local, layout->dim, tp_rank);
  pl.dim = layout->dim;
  pl.global_shape[pl.dim] = layout->full;
  pl.start = layout->starts.at(tp_rank);
  pl.valid = layout->valid(tp_rank);
  pl.writer = layout->first_holder(tp_rank);
  return pl;
}

void add_local_slices(std::vector<checkpoint::OwnedSlice>& out, const std::string& name, const LocalPlacement& pl,
                      const at::Tensor& local) {
  if (!local.sizes().equals(pl.local_shape))
    fail("checkpoint: tensor '{}' has local shape {} but its placement expects [{}]", name, local.sizes(),
         fmt::join(pl.local_shape, ", "));
  if (pl.empty()) return;
  at::Tensor part = pl.dim >= 0 ? local.narrow(pl.dim, 0, pl.valid) : local;
  out.push_back({name, pl.global_shape, pl.global_box(), part.detach()});
}

void add_local_range_slices(std::vector<checkpoint::OwnedSlice>& out, const std::string& name, const LocalPlacement& pl,
                            int64_t at, const at::Tensor& flat) {
  const int64_t n = flat.numel();
  if (at < 0 || at + n > checkpoint::numel_of(pl.local_shape))
    fail("checkpoint: range [{}, {}) of tensor '{}' lies outside its local shape [{}]", at, at + n, name,
         fmt::join(pl.local_shape, ", "));
  if (n == 0 || pl.empty()) return;
  if (pl.dim < 0) {  // the local tensor is the global one: the range as it is
    out.push_back({name, pl.global_shape, checkpoint::Region::range(at, n), flat.detach().reshape({-1})});
    return;
  }
  std::vector<int64_t> zero(pl.local_shape.size(), 0), valid_len = pl.local_shape;
  valid_len[pl.dim] = pl.valid;
  const auto valid_box = checkpoint::Region::box(zero, valid_len);
  for (const auto& b : checkpoint::flat_to_boxes(at, n, pl.local_shape)) {
    checkpoint::Region inter;
    if (b.numel() == 0 || !checkpoint::intersect(b, valid_box, inter)) continue;  // padding rows
    at::Tensor data = flat.narrow(0, checkpoint::linear_index(b.start, pl.local_shape) - at, b.numel()).view(b.length);
    for (size_t k = 0; k < b.length.size(); ++k)
      data = data.narrow(static_cast<int64_t>(k), inter.start[k] - b.start[k], inter.length[k]);
    auto g = inter;
    g.start[pl.dim] += pl.start;
    out.push_back({name, pl.global_shape, g, data.detach()});
  }
}

at::Tensor read_local(const checkpoint::CheckpointReader& r, const std::string& name, const LocalPlacement& pl) {
  const auto& info = r.info(name);
  if (info.shape != pl.global_shape)
    fail("checkpoint: tensor '{}' has shape [{}] but this run expects [{}] (different model config?)", name,
         fmt::join(info.shape, ", "), fmt::join(pl.global_shape, ", "));
  if (pl.dim < 0) return r.read_full(name);
  at::Tensor out = at::zeros(pl.local_shape, at::TensorOptions().dtype(r.scalar_type(name)));
  if (!pl.empty()) out.narrow(pl.dim, 0, pl.valid).copy_(r.read(name, pl.global_box()));
  return out;
}

at::Tensor read_local_range(const checkpoint::CheckpointReader& r, const std::string& name, const LocalPlacement& pl,
                            int64_t at, int64_t n) {
  if (pl.dim < 0) {
    const auto& info = r.info(name);
    if (info.shape != pl.global_shape)
      fail("checkpoint: tensor '{}' has shape [{}] but this run expects [{}] (different model config?)", name,
           fmt::join(info.shape, ", "), fmt::join(pl.global_shape, ", "));
    return r.read(name, checkpoint::Region::range(at, n));
  }
  return read_local(r, name, pl).reshape({-1}).narrow(0, at, n).clone();
}

}  // namespace strata::trainer
