#include "optim/grad_clip.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace strata::optim {

namespace {
// Sum of squared gradient norms as a float64 scalar tensor (on the gradients' device).
at::Tensor squared_norm(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return at::zeros({}, at::kDouble);
  auto norms = at::_foreach_norm(grads, 2);
  return at::stack(norms).to(at::kDouble).pow(2).sum();
}
}  // namespace

double grad_norm(const std::vector<at::Tensor>& params) { return squared_norm(params).sqrt().item<double>(); }

double grad_norm(const std::vector<at::Tensor>& params, parallel::ProcessGroup* group) {
  if (!group || group->size() == 1) return grad_norm(params);
  auto sq = squared_norm(params).reshape({1}).contiguous();
  group->all_reduce(sq, parallel::ReduceOp::Sum)->wait();
  return sq.sqrt().item<double>();
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  return clip_grad_norm(params, max_norm, nullptr);
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm, parallel::ProcessGroup* group) {
  torch::NoGradGuard no_grad;
  return scale_grads_to_max_norm(params, grad_norm(params, group), max_norm);
}

double scale_grads_to_max_norm(const std::vector<at::Tensor>& params, double norm, double max_norm) {
  if (max_norm > 0 && norm > max_norm) {
    torch::NoGradGuard no_grad;
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return norm;
}

}  // namespace strata::optim
