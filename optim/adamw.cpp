#include "optim/adamw.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"

namespace strata::optim {

AdamW::AdamW(std::vector<ParamGroup> groups, double b1, double b2, double eps) : beta1_(b1), beta2_(b2), eps_(eps) {
  groups_ = std::move(groups);
  for (const auto& g : groups_) {
    m_.emplace_back();
    v_.emplace_back();
    for (const auto& p : g.params) {
      m_.back().push_back(at::zeros_like(p, at::MemoryFormat::Contiguous).to(at::kFloat));
      v_.back().push_back(at::zeros_like(p, at::MemoryFormat::Contiguous).to(at::kFloat));
    }
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++t_;
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t_));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2_, static_cast<double>(t_)));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& g = groups_[gi];
    for (size_t i = 0; i < g.params.size(); ++i) {
      at::Tensor& p = g.params[i];
      const at::Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      at::Tensor &m = m_[gi][i], &v = v_[gi][i];
      if (g.weight_decay != 0.0) p.mul_(1.0 - lr * g.weight_decay);
      m.lerp_(grad, 1.0 - beta1_);
      v.mul_(beta2_).addcmul_(grad, grad, 1.0 - beta2_);
      auto denom = (v.sqrt() / bc2_sqrt).add_(eps_);
      p.addcdiv_(m, denom, -lr / bc1);
    }
  }
}

std::map<std::string, at::Tensor> AdamW::state() const {
  std::map<std::string, at::Tensor> out;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      out["adamw.m." + groups_[gi].names[i]] = m_[gi][i];
      out["adamw.v." + groups_[gi].names[i]] = v_[gi][i];
    }
  out["adamw.t"] = at::tensor({t_}, at::kLong);
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& state) {
  torch::NoGradGuard no_grad;
  auto get = [&](const std::string& key, const at::Tensor& like) {
    auto it = state.find(key);
    if (it == state.end()) fail("optimizer state has no entry '{}' (was the checkpoint written by another optimizer?)", key);
    if (!it->second.sizes().equals(like.sizes()))
      fail("optimizer state '{}' has shape {} but the parameter needs {}", key, it->second.sizes(), like.sizes());
    return it->second;
  };
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      m_[gi][i].copy_(get("adamw.m." + groups_[gi].names[i], m_[gi][i]));
      v_[gi][i].copy_(get("adamw.v." + groups_[gi].names[i], v_[gi][i]));
    }
  auto it = state.find("adamw.t");
  if (it == state.end()) fail("optimizer state has no step counter 'adamw.t'");
  t_ = it->second.item<int64_t>();
}

}  // namespace strata::optim
