#include "optim/adamw.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "optim/slices.hpp"

namespace strata::optim {

AdamW::AdamW(std::vector<ParamGroup> groups, double b1, double b2, double eps, bool fused)
    : beta1_(b1), beta2_(b2), eps_(eps), fused_(fused) {
  groups_ = std::move(groups);
  for (const auto& g : groups_) {
    m_.emplace_back();
    v_.emplace_back();
    steps_.emplace_back();
    for (const auto& p : g.params) {
      if (fused_ && p.scalar_type() != at::kFloat)
        fail("adamw: the fused path keeps fp32 moments and needs fp32 parameters; '{}' is {}", g.names.at(m_.back().size()),
             c10::toString(p.scalar_type()));
      m_.back().push_back(at::zeros_like(p, at::MemoryFormat::Contiguous).to(at::kFloat));
      v_.back().push_back(at::zeros_like(p, at::MemoryFormat::Contiguous).to(at::kFloat));
      if (fused_) steps_.back().push_back(at::zeros({}, p.options().dtype(at::kFloat)));
    }
  }
}

namespace {
// The update on one set of same-shaped tensors; `denom` receives sqrt(v) / bc2_sqrt + eps.
void adamw_ops(at::Tensor& p, const at::Tensor& grad, at::Tensor& m, at::Tensor& v, at::Tensor& denom,
               const AdamWScalars& k) {
  if (k.decays) p.mul_(k.decay);
  m.lerp_(grad, k.w1);
  v.mul_(k.beta2).addcmul_(grad, grad, k.w2);
  at::sqrt_out(denom, v);
  denom.div_(k.bc2_sqrt).add_(k.eps);
  p.addcdiv_(m, denom, k.step_size);
}

// A fused-kernel update needs dense row-major tensors: at::_fused_adamw_ on CPU walks raw memory in
// order, so a transposed parameter would be paired with the wrong gradient and moment elements (it
// does not check; tests/optim/test_adamw.cpp covers the case). Such tensors take the exact update.
bool fusable(const at::Tensor& p, const at::Tensor& grad) {
  return p.is_contiguous() && grad.is_contiguous() && grad.scalar_type() == p.scalar_type() && grad.device() == p.device();
}
}  // namespace

void AdamW::update_exact(at::Tensor& p, const at::Tensor& grad, at::Tensor& m, at::Tensor& v, const AdamWScalars& k) {
  if (!sliceable(p, grad)) {  // the same ops on the whole tensors
    auto denom = at::empty_like(v);
    adamw_ops(p, grad, m, v, denom, k);
    return;
  }
  if (!scratch_.defined()) scratch_ = at::empty({kSliceElems}, v.options());
  auto pf = p.view({-1}), gf = grad.view({-1}), mf = m.view({-1}), vf = v.view({-1});
  for_each_slice(p.numel(), [&](int64_t s, int64_t len) {
    auto ps = pf.narrow(0, s, len), ms = mf.narrow(0, s, len), vs = vf.narrow(0, s, len);
    auto denom = scratch_.narrow(0, 0, len);
    adamw_ops(ps, gf.narrow(0, s, len), ms, vs, denom, k);
  });
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++t_;
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t_));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2_, static_cast<double>(t_)));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& g = groups_[gi];
    const AdamWScalars k{g.weight_decay != 0.0, 1.0 - lr * g.weight_decay, 1.0 - beta1_, beta2_, 1.0 - beta2_, bc2_sqrt, eps_, -lr / bc1};
    std::vector<at::Tensor> ps, grads, ms, vs, steps;  // the fused kernel's share of this group
    for (size_t i = 0; i < g.params.size(); ++i) {
      at::Tensor& p = g.params[i];
      const at::Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      if (fused_ && fusable(p, grad)) {
        ps.push_back(p);
        grads.push_back(grad);
        ms.push_back(m_[gi][i]);
        vs.push_back(v_[gi][i]);
        steps.push_back(steps_[gi][i]);
      } else {
        update_exact(p, grad, m_[gi][i], v_[gi][i], k);
      }
    }
    if (fused_ && !steps_[gi].empty()) at::_foreach_add_(steps_[gi], 1.0);  // every counter stays = t_ (the kernel reads, not advances, them)
    if (!ps.empty())
      at::_fused_adamw_(ps, grads, ms, vs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1_, beta2_, g.weight_decay, eps_,
                        /*amsgrad=*/false, /*maximize=*/false);
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
  for (auto& group_steps : steps_)
    for (auto& s : group_steps) s.fill_(static_cast<double>(t_));
}

void AdamW::visit_param_state(const StateVisitor& fn) {
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      fn(groups_[gi].names[i], m_[gi][i]);
      fn(groups_[gi].names[i], v_[gi][i]);
    }
}

}  // namespace strata::optim
