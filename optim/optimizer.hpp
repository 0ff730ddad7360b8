// The optimizer plugin interface. An optimizer owns per-parameter state, steps with a given
// learning rate, and exposes its state as named tensors for checkpoints. New optimizers are one
// file plus one registration line in registry.cpp.
//
// Sharding contract (ZeRO-1 and friends): an optimizer touches only the ParamGroups it is given,
// reads each parameter's gradient from `p.grad()`, and keys all of its state by the names in those
// groups. So a sharded wrapper can hand it groups whose tensors are this rank's shards (leaf
// tensors with their `grad` set to the matching slice of the reduced gradient, names such as
// "blocks.0.attn.wq.weight" or "<name>#shard3"), step it, and gather the updated shards; state()
// then holds exactly this rank's entries. Per-step statistics that depend on every coordinate
// (Sophia's win_rate) are computed from additive sums passed through a caller-supplied sum
// reduction, so they come out global when the caller all-reduces over the shard group.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "optim/config.hpp"

namespace strata::optim {

struct ParamGroup {
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
  double weight_decay = 0.0;
};

// Sums a float64 tensor element-wise over the ranks that share an optimizer's coordinates (a
// ZeRO-1 shard group); empty = one rank holds everything.
using SumReduce = std::function<void(at::Tensor&)>;
// How one parameter (or piece of one) of `numel` elements counts in such statistics: a weight for its
// sums and its number of real coordinates (default: 1 and numel). Under tensor parallelism a tensor
// every tp rank holds whole weighs 1/tp on each (the tp sum counts it once) and vocabulary padding
// rows are not coordinates.
struct MetricShare {
  double weight = 1.0, coordinates = 0.0;
};
using MetricWeight = std::function<MetricShare(const std::string& param_name, int64_t numel)>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step(double lr) = 0;
  // State as named tensors ("<kind>.<param name>") plus scalar counters, for checkpoints.
  virtual std::map<std::string, at::Tensor> state() const = 0;
  virtual void load_state(const std::map<std::string, at::Tensor>& state) = 0;
  const std::vector<ParamGroup>& groups() const { return groups_; }
  void zero_grad();

  // Curvature hooks, used by Sophia; other optimizers keep these defaults.
  // Refresh the curvature estimate after step s when hessian_interval() > 0 and
  // s % hessian_interval() == hessian_interval() - 1 (0-indexed).
  virtual int64_t hessian_interval() const { return 0; }
  // Which estimator the refresh must run ("gnb" or "hutchinson"); meaningful when interval > 0.
  virtual std::string hessian_estimator() const { return ""; }
  // Folds the estimate the refresh left in each p.grad() into the curvature state.
  virtual void update_hessian();
  // Global tokens per optimizer step (Sophia's bs); optimizers that do not use it ignore it.
  virtual void set_tokens_per_step(double /*tokens*/) {}
  // Named values to log after a step (e.g. win_rate, hessian_norm); `reduce` makes them global
  // under sharding, `weight` counts replicated parameters once.
  virtual std::vector<std::pair<std::string, double>> metrics(const SumReduce& /*reduce*/ = {},
                                                              const MetricWeight& /*weight*/ = {}) const {
    return {};
  }
  // Visits every per-parameter state tensor (moments, curvature) with its parameter's name, so
  // callers can edit state in place (sparse training zeroes it at pruned entries). Optimizers
  // that do not implement it fail, naming themselves.
  using StateVisitor = std::function<void(const std::string& param_name, at::Tensor& state)>;
  virtual void visit_param_state(const StateVisitor& fn);
  // What step() updates, as flat slices of the parameters: `value` is the leaf holding elements
  // [offset, offset + value.numel()) of parameter `name` in row-major order, value.grad() the
  // gradient step() reads, `state` that parameter's per-parameter state over the same elements.
  // Unsharded optimizers: each parameter itself (offset 0) with visit_param_state's tensors; ZeRO-1:
  // this rank's pieces and the inner optimizer's state of them. Sparse training masks all three.
  struct StepSlice {
    const std::string& name;
    int64_t offset;
    at::Tensor& value;
    std::vector<at::Tensor*> state;
  };
  using SliceVisitor = std::function<void(StepSlice& slice)>;
  virtual void visit_step_slices(const SliceVisitor& fn);

 protected:
  std::vector<ParamGroup> groups_;
};

enum class DecayRule {
  Matrices,    // every parameter with dim >= 2
  LinearOnly,  // only the names in `linear_weights` (Linear-layer weights; not embeddings)
};
DecayRule parse_decay_rule(const std::string& name);

// Splits named parameters into a decay group and a no-decay group (biases, norm gains, and under
// LinearOnly the embeddings). Empty groups are dropped.
std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                          double weight_decay, DecayRule rule = DecayRule::Matrices,
                                          const std::set<std::string>& linear_weights = {});
// The Matrices rule (kept for callers that need no choice).
std::vector<ParamGroup> default_param_groups(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                             double weight_decay);

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, std::vector<ParamGroup> groups);

}  // namespace strata::optim
