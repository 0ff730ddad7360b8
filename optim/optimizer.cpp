#include "optim/optimizer.hpp"

#include <ATen/ATen.h>

namespace strata::optim {

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params)
      if (p.grad().defined()) p.mutable_grad().zero_();
}

std::vector<ParamGroup> default_param_groups(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                             double weight_decay) {
  ParamGroup decay, no_decay;
  decay.weight_decay = weight_decay;
  for (const auto& [name, p] : named) {
    auto& g = p.dim() >= 2 ? decay : no_decay;
    g.names.push_back(name);
    g.params.push_back(p);
  }
  std::vector<ParamGroup> out;
  if (!decay.params.empty()) out.push_back(std::move(decay));
  if (!no_decay.params.empty()) out.push_back(std::move(no_decay));
  return out;
}

}  // namespace strata::optim
