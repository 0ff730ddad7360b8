#include "optim/grad_clip.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace strata::optim {

double grad_norm(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  auto norms = at::_foreach_norm(grads, 2);
  return at::stack(norms).to(at::kDouble).pow(2).sum().sqrt().item<double>();
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  double norm = grad_norm(params);
  if (max_norm > 0 && norm > max_norm) {
    double scale = max_norm / (norm + 1e-6);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return norm;
}

}  // namespace strata::optim
