#include "parallel/mesh.hpp"

#include "core/error.hpp"
#include "parallel/runtime.hpp"

namespace strata::parallel {

MeshShape::MeshShape(int64_t world_size, const ParallelConfig& cfg) : tp_(cfg.tp), dp_(cfg.dp), pp_(cfg.pp) {
  if (tp_ < 1 || pp_ < 1) fail("parallel.tp = {} and parallel.pp = {} must be at least 1", tp_, pp_);
  if (world_size % (tp_ * pp_) != 0)
    fail("world size {} is not divisible by parallel.tp x parallel.pp = {} x {}", world_size, tp_, pp_);
  if (dp_ == 0) dp_ = world_size / (tp_ * pp_);
  if (tp_ * dp_ * pp_ != world_size)
    fail("parallel.tp x parallel.pp x parallel.dp = {} x {} x {} = {} but the world has {} processes (set parallel.dp = 0 "
         "to infer it)",
         tp_, pp_, dp_, tp_ * pp_ * dp_, world_size);
}

MeshCoord MeshShape::coord(int64_t rank) const {
  if (rank < 0 || rank >= world()) fail("mesh: rank {} is outside the world of {}", rank, world());
  return {rank % tp_, (rank / tp_) % dp_, rank / (tp_ * dp_)};
}

int64_t MeshShape::rank_of(const MeshCoord& c) const { return c.tp + tp_ * (c.dp + dp_ * c.pp); }

std::vector<std::vector<int64_t>> MeshShape::groups(const std::string& axis) const {
  std::vector<std::vector<int64_t>> out;
  auto add = [&](int64_t n, auto rank_at) {
    std::vector<int64_t> g;
    for (int64_t k = 0; k < n; ++k) g.push_back(rank_at(k));
    out.push_back(std::move(g));
  };
  if (axis == "tp") {
    for (int64_t p = 0; p < pp_; ++p)
      for (int64_t d = 0; d < dp_; ++d) add(tp_, [&](int64_t k) { return rank_of({k, d, p}); });
  } else if (axis == "dp") {
    for (int64_t p = 0; p < pp_; ++p)
      for (int64_t t = 0; t < tp_; ++t) add(dp_, [&](int64_t k) { return rank_of({t, k, p}); });
  } else if (axis == "pp") {
    for (int64_t d = 0; d < dp_; ++d)
      for (int64_t t = 0; t < tp_; ++t) add(pp_, [&](int64_t k) { return rank_of({t, d, k}); });
  } else {
    fail("mesh: unknown axis '{}' (tp, dp or pp)", axis);
  }
  return out;
}

DeviceMesh::DeviceMesh(Runtime& rt, const ParallelConfig& cfg)
    : shape_(rt.world().size, cfg), rank_(rt.world().rank), coord_(shape_.coord(rank_)) {
  world_ = rt.world_group();
  // Same order on every rank: split is collective over the world for some backends (MPI).
  tp_ = rt.split(shape_.groups("tp"), "tp");
  dp_ = rt.split(shape_.groups("dp"), "dp");
  pp_ = rt.split(shape_.groups("pp"), "pp");
}

}  // namespace strata::parallel
