#include "optim/optimizer.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::optim {

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params)
      if (p.grad().defined()) p.mutable_grad().zero_();
}

void Optimizer::update_hessian() {
  fail("this optimizer keeps no curvature estimate; update_hessian() is for optim.name = sophia");
}

void Optimizer::visit_param_state(const StateVisitor&) {
  fail("this optimizer does not expose its per-parameter state (visit_param_state); sparse training needs it "
       "(supported: adamw, sophia, and either under parallel.zero1)");
}

void Optimizer::visit_step_slices(const SliceVisitor& fn) {
  std::map<std::string, std::vector<at::Tensor*>> state;  // the state tensors live as long as the optimizer
  visit_param_state([&](const std::string& name, at::Tensor& t) { state[name].push_back(&t); });
  for (auto& g : groups_)
    for (size_t i = 0; i < g.params.size(); ++i) {
      StepSlice s{g.names[i], 0, g.params[i], state[g.names[i]]};
      fn(s);
    }
}

DecayRule parse_decay_rule(const std::string& name) {
  if (name == "matrices") return DecayRule::Matrices;
  if (name == "linear_only") return DecayRule::LinearOnly;
  fail("optim.decay_rule = '{}' is not one of: matrices, linear_only", name);
}

std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                          double weight_decay, DecayRule rule,
                                          const std::set<std::string>& linear_weights) {
  if (rule == DecayRule::LinearOnly && linear_weights.empty())
    fail("optim.decay_rule = linear_only, but the model reported no Linear-layer weights");
  ParamGroup decay, no_decay;
  decay.weight_decay = weight_decay;
  for (const auto& [name, p] : named) {
    const bool decays = rule == DecayRule::Matrices ? p.dim() >= 2 : linear_weights.count(name) > 0;
    auto& g = decays ? decay : no_decay;
    g.names.push_back(name);
    g.params.push_back(p);
  }
  std::vector<ParamGroup> out;
  if (!decay.params.empty()) out.push_back(std::move(decay));
  if (!no_decay.params.empty()) out.push_back(std::move(no_decay));
  return out;
}

std::vector<ParamGroup> default_param_groups(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                             double weight_decay) {
  return make_param_groups(named, weight_decay, DecayRule::Matrices);
}

}  // namespace strata::optim
