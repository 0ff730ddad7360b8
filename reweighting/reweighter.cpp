#include "reweighting/reweighter.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"

namespace strata::reweighting {

Reweighter::Reweighter(ReweightConfig cfg, std::shared_ptr<parallel::ProcessGroup> dp)
    : cfg_(std::move(cfg)), dp_(std::move(dp)) {
  if (!dp_) fail("reweighting: no data-parallel group given (use parallel::make_single_rank_group for one process)");
  strategy_ = make_strategy(cfg_.strategy);
  if (!(cfg_.r > 0)) fail("reweighting.r must be > 0, got {}", cfg_.r);
  if (cfg_.r_start < 0) fail("reweighting.r_start must be >= 0 (0 = no schedule), got {}", cfg_.r_start);
  if (cfg_.r_warmup_steps < 0) fail("reweighting.r_warmup_steps must be >= 0, got {}", cfg_.r_warmup_steps);
  if (cfg_.burn_in_steps < 0) fail("reweighting.burn_in_steps must be >= 0, got {}", cfg_.burn_in_steps);
  if (!(cfg_.delta > 0)) fail("reweighting.delta must be > 0, got {}", cfg_.delta);
}

double Reweighter::r_at(int64_t step) const {
  if (cfg_.r_start <= 0 || cfg_.r_warmup_steps <= 0) return cfg_.r;
  const double t = static_cast<double>(step - cfg_.burn_in_steps) / static_cast<double>(cfg_.r_warmup_steps);
  if (t >= 1) return cfg_.r;
  const double u = std::max(0.0, t);
  return std::exp((1 - u) * std::log(cfg_.r_start) + u * std::log(cfg_.r));
}

ReweightedLoss Reweighter::loss(const SequenceLosses& s, int64_t step) const {
  if (s.loss.dim() != 1 || s.loss.numel() == 0 || !s.tokens.sizes().equals(s.loss.sizes()))
    fail("reweighting: per-sequence losses must be a non-empty [b] vector with [b] token counts, got {} and {}",
         s.loss.sizes(), s.tokens.sizes());
  ReweightedLoss out;
  auto mean = token_mean(s);
  out.mean_loss = mean.detach();
  if (!active(step)) {
    out.loss = mean;
    return out;
  }
  const int64_t W = dp_->size(), b = s.loss.numel(), k = dp_->rank();
  at::Tensor all;
  {
    torch::NoGradGuard no_grad;
    auto local = s.loss.detach().to(at::kFloat).contiguous();
    all = at::empty({W * b}, local.options());
    dp_->all_gather_flat(all, local)->wait();  // the one collective per micro-step
  }
  auto wts = compute_weights(all, *strategy_, r_at(step), cfg_.delta);
  out.weighted = true;
  out.stats = wts.stats;
  out.weights = wts.w;
  auto w_local = wts.w.slice(0, k * b, (k + 1) * b).to(s.loss.scalar_type());  // constants
  if (cfg_.token_weighted) {
    auto frac = s.tokens / at::clamp_min(s.tokens.sum(), 1.0);
    out.loss = static_cast<double>(W * b) * (w_local * frac * s.loss).sum();
  } else {
    out.loss = static_cast<double>(W) * (w_local * s.loss).sum();
  }
  return out;
}

ReweightedLoss Reweighter::loss(const at::Tensor& logits, const at::Tensor& targets, int64_t step,
                                int64_t ignore_index) const {
  return loss(per_sequence_cross_entropy(logits, targets, ignore_index), step);
}

}  // namespace strata::reweighting
