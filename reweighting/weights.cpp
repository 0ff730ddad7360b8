#include "reweighting/weights.hpp"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::reweighting {

at::Tensor normalize_losses(const at::Tensor& losses, double delta) {
  auto l = losses.detach().to(at::kDouble);
  const auto lmin = l.min(), lmax = l.max();
  return delta * (2.0 * l - lmax - lmin) / at::clamp_min(lmax - lmin, 1e-6);
}

at::Tensor kl_weights(const at::Tensor& f, double r, bool subtract_max) {
  if (!(r > 0) || !std::isfinite(r)) fail("reweighting: the temperature r must be finite and > 0, got {}", r);
  auto g = f.detach().to(at::kDouble);
  if (subtract_max) g = g - g.max();
  auto e = at::exp(g / r);
  return e / e.sum();
}

Weights compute_weights(const at::Tensor& losses, const Strategy& strategy, double r, double delta) {
  if (losses.dim() != 1 || losses.numel() == 0)
    fail("reweighting: expected a non-empty 1-D vector of per-sequence losses, got shape {}", losses.sizes());
  if (!(delta > 0)) fail("reweighting.delta must be > 0, got {}", delta);
  auto l = losses.detach().to(at::kDouble);
  if (!at::isfinite(l).all().item<bool>()) fail("reweighting: a per-sequence loss is not finite (diverged?)");
  Weights out;
  out.w = kl_weights(strategy.shape(normalize_losses(l, delta), delta), r);
  auto wc = out.w.cpu();
  out.stats.entropy = -(wc * at::log(at::clamp_min(wc, 1e-300))).sum().item<double>();
  out.stats.max_weight = wc.max().item<double>();
  out.stats.l_min = l.min().item<double>();
  out.stats.l_max = l.max().item<double>();
  return out;
}

void StatsMeter::add(const WeightStats& s) {
  sum_.entropy += s.entropy;
  sum_.max_weight += s.max_weight;
  sum_.l_min += s.l_min;
  sum_.l_max += s.l_max;
  ++n_;
}

std::vector<std::pair<std::string, double>> StatsMeter::take() {
  std::vector<std::pair<std::string, double>> out;
  if (n_ == 0) return out;
  const double n = static_cast<double>(n_);
  out = {{"reweight/entropy", sum_.entropy / n},
         {"reweight/max_weight", sum_.max_weight / n},
         {"reweight/l_min", sum_.l_min / n},
         {"reweight/l_max", sum_.l_max / n}};
  sum_ = {};
  n_ = 0;
  return out;
}

}  // namespace strata::reweighting
