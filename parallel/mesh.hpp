// The device mesh: world = tp x dp x pp with tp innermost (consecutive ranks, so a tp group stays
// on one node), then dp, then pp outermost (Megatron's order):
//   rank = tp_rank + tp * (dp_rank + dp * pp_rank).
// MeshShape is the pure arithmetic; DeviceMesh adds one ProcessGroup per axis.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parallel/config.hpp"
#include "parallel/process_group.hpp"

namespace strata::parallel {

class Runtime;

struct MeshCoord {
  int64_t tp = 0, dp = 0, pp = 0;
};

class MeshShape {
 public:
  // dp = 0 in cfg infers dp = world / (tp * pp); errors name the recipe keys when inconsistent.
  MeshShape(int64_t world_size, const ParallelConfig& cfg);
  int64_t tp() const { return tp_; }
  int64_t dp() const { return dp_; }
  int64_t pp() const { return pp_; }
  int64_t world() const { return tp_ * dp_ * pp_; }
  MeshCoord coord(int64_t rank) const;
  int64_t rank_of(const MeshCoord& c) const;
  // The groups along one axis ("tp", "dp" or "pp"): a partition of the world, each group ordered
  // by its coordinate along the axis.
  std::vector<std::vector<int64_t>> groups(const std::string& axis) const;

 private:
  int64_t tp_, dp_, pp_;
};

class DeviceMesh {
 public:
  DeviceMesh(Runtime& rt, const ParallelConfig& cfg);
  const MeshShape& shape() const { return shape_; }
  const MeshCoord& coord() const { return coord_; }
  int64_t rank() const { return rank_; }
  std::shared_ptr<ProcessGroup> tp() const { return tp_; }
  std::shared_ptr<ProcessGroup> dp() const { return dp_; }
  std::shared_ptr<ProcessGroup> pp() const { return pp_; }
  std::shared_ptr<ProcessGroup> world() const { return world_; }

 private:
  MeshShape shape_;
  int64_t rank_;
  MeshCoord coord_;
  std::shared_ptr<ProcessGroup> tp_, dp_, pp_, world_;
};

}  // namespace strata::parallel
