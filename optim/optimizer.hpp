// The optimizer plugin interface. An optimizer owns per-parameter state, steps with a given
// learning rate, and exposes its state as named tensors for checkpoints. New optimizers are one
// file plus one registration line in registry.cpp.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "optim/config.hpp"

namespace strata::optim {

struct ParamGroup {
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
  double weight_decay = 0.0;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step(double lr) = 0;
  // State as named tensors ("<kind>.<param name>") plus scalar counters, for checkpoints.
  virtual std::map<std::string, at::Tensor> state() const = 0;
  virtual void load_state(const std::map<std::string, at::Tensor>& state) = 0;
  const std::vector<ParamGroup>& groups() const { return groups_; }
  void zero_grad();

 protected:
  std::vector<ParamGroup> groups_;
};

// Splits named parameters into decay (matrices, dim >= 2) and no-decay (biases, norm gains) groups.
std::vector<ParamGroup> default_param_groups(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                             double weight_decay);

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, std::vector<ParamGroup> groups);

}  // namespace strata::optim
