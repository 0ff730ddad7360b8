#include "optim/sophia.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "optim/slices.hpp"

namespace strata::optim {

Sophia::Estimator parse_estimator(const std::string& name) {
  if (name == "gnb") return Sophia::Estimator::Gnb;
  if (name == "hutchinson") return Sophia::Estimator::Hutchinson;
  fail("optim.hessian_estimator = '{}' is not one of: gnb, hutchinson", name);
}

Sophia::Sophia(std::vector<ParamGroup> groups, double b1, double b2, double rho, int64_t interval, Estimator est)
    : beta1_(b1), beta2_(b2), rho_(rho), interval_(interval), estimator_(est) {
  if (interval_ < 1) fail("optim.hessian_interval = {} must be at least 1 for sophia", interval_);
  if (rho_ <= 0) fail("optim.rho = {} must be positive for sophia", rho_);
  groups_ = std::move(groups);
  auto fp32_zeros = [](const at::Tensor& p) {
    return at::zeros(p.sizes(), p.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous));
  };
  for (const auto& g : groups_) {
    m_.emplace_back();
    hc_.emplace_back();
    for (const auto& p : g.params) {
      m_.back().push_back(fp32_zeros(p));
      hc_.back().push_back(fp32_zeros(p));
    }
  }
}

at::Tensor Sophia::scaled_hessian(const at::Tensor& hc) const {
  auto out = at::empty_like(hc);
  scaled_hessian_out(out, hc);
  return out;
}

void Sophia::scaled_hessian_out(at::Tensor& out, const at::Tensor& hc) const {
  if (estimator_ == Estimator::Gnb) {
    out.copy_(hc).mul_(rho_ * bs_);
  } else {
    at::clamp_min_out(out, hc, 0.0).mul_(rho_);
  }
}

void Sophia::update(at::Tensor& p, const at::Tensor& grad, at::Tensor& m, const at::Tensor& hc, at::Tensor& a,
                    at::Tensor& b, double lr, double weight_decay) const {
  p.mul_(1.0 - lr * weight_decay);
  m.mul_(beta1_).add_(grad, 1.0 - beta1_);
  at::abs_out(a, m);
  scaled_hessian_out(b, hc);
  a.div_(b.add_(1e-15)).clamp_max_(1.0);  // ratio = min(|m| / (scaled hc + 1e-15), 1)
  at::sign_out(b, m);
  p.addcmul_(b, a, -lr);
}

void Sophia::step(double lr) {
  if (estimator_ == Estimator::Gnb && !(bs_ > 0))
    fail("sophia: tokens per step (bs) is {}; call set_tokens_per_step(global tokens per step) before step()", bs_);
  torch::NoGradGuard no_grad;
  ++steps_;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& g = groups_[gi];
    for (size_t i = 0; i < g.params.size(); ++i) {
      at::Tensor& p = g.params[i];
      const at::Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      at::Tensor &m = m_[gi][i], &hc = hc_[gi][i];
      if (!sliceable(p, grad)) {  // the same ops on the whole tensors
        auto a = at::empty_like(m), b = at::empty_like(m);
        update(p, grad, m, hc, a, b, lr, g.weight_decay);
        continue;
      }
      if (!scratch_.defined()) scratch_ = at::empty({2, kSliceElems}, m.options());
      auto pf = p.view({-1}), gf = grad.view({-1}), mf = m.view({-1}), hf = hc.view({-1});
      for_each_slice(p.numel(), [&](int64_t s, int64_t len) {
        auto ps = pf.narrow(0, s, len), ms = mf.narrow(0, s, len);
        auto a = scratch_[0].narrow(0, 0, len), b = scratch_[1].narrow(0, 0, len);
        update(ps, gf.narrow(0, s, len), ms, hf.narrow(0, s, len), a, b, lr, g.weight_decay);
      });
    }
  }
}

void Sophia::update_hessian() {
  torch::NoGradGuard no_grad;
  ++refreshes_;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const at::Tensor& grad = groups_[gi].params[i].grad();
      if (!grad.defined()) continue;
      at::Tensor& hc = hc_[gi][i];
      if (estimator_ == Estimator::Gnb) hc.mul_(beta2_).addcmul_(grad, grad, 1.0 - beta2_);
      else hc.mul_(beta2_).add_(grad, 1.0 - beta2_);
    }
}

std::vector<std::pair<std::string, double>> Sophia::metrics(const SumReduce& reduce, const MetricWeight& weight) const {
  torch::NoGradGuard no_grad;
  // Sums: [unclipped coordinates, all coordinates, sum of hc^2], on the state's device.
  at::Tensor sums;
  for (size_t gi = 0; gi < m_.size(); ++gi)
    for (size_t i = 0; i < m_[gi].size(); ++i) {
      const auto &m = m_[gi][i], &hc = hc_[gi][i];
      const MetricShare share = weight ? weight(groups_[gi].names[i], m.numel())
                                       : MetricShare{1.0, static_cast<double>(m.numel())};
      // Padding coordinates (m = hc = 0) are never unclipped and add nothing to hc^2.
      auto part = at::stack({(m.abs() < scaled_hessian(hc)).sum().to(at::kDouble) * share.weight,
                             at::scalar_tensor(share.coordinates, m.options().dtype(at::kDouble)),
                             hc.to(at::kDouble).square().sum() * share.weight});
      sums = sums.defined() ? sums + part : part;
    }
  if (!sums.defined()) return {};
  sums = sums.cpu();
  if (reduce) reduce(sums);
  auto s = sums.accessor<double, 1>();
  return {{"win_rate", s[1] > 0 ? s[0] / s[1] : 0.0}, {"hessian_norm", std::sqrt(s[2])}};
}

std::map<std::string, at::Tensor> Sophia::state() const {
  std::map<std::string, at::Tensor> out;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      out["sophia.m." + groups_[gi].names[i]] = m_[gi][i];
      out["sophia.hc." + groups_[gi].names[i]] = hc_[gi][i];
    }
  out["sophia.steps"] = at::tensor({steps_}, at::kLong);
  out["sophia.refreshes"] = at::tensor({refreshes_}, at::kLong);
  return out;
}

void Sophia::load_state(const std::map<std::string, at::Tensor>& state) {
  torch::NoGradGuard no_grad;
  auto get = [&](const std::string& key) -> const at::Tensor& {
    auto it = state.find(key);
    if (it == state.end()) fail("optimizer state has no entry '{}' (was the checkpoint written by another optimizer?)", key);
    return it->second;
  };
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i)
      for (auto* kind : {"m", "hc"}) {
        const std::string key = std::string("sophia.") + kind + "." + groups_[gi].names[i];
        at::Tensor& dst = std::string(kind) == "m" ? m_[gi][i] : hc_[gi][i];
        const at::Tensor& src = get(key);
        if (!src.sizes().equals(dst.sizes()))
          fail("optimizer state '{}' has shape {} but the parameter needs {}", key, src.sizes(), dst.sizes());
        dst.copy_(src);
      }
  steps_ = get("sophia.steps").item<int64_t>();
  refreshes_ = get("sophia.refreshes").item<int64_t>();
}

void Sophia::visit_param_state(const StateVisitor& fn) {
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      fn(groups_[gi].names[i], m_[gi][i]);
      fn(groups_[gi].names[i], hc_[gi][i]);
    }
}

}  // namespace strata::optim
