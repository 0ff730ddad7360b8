// Sophia (specs/sophia.md), in the authors' code form (Liuhong99/Sophia, SophiaG):
//   update_hessian():  hc <- b2*hc + (1-b2)*hhat, hhat = grad^2 for GNB (grad of the mean
//                      sampled-label CE, no factor B), or hhat = u*(H u) for Hutchinson
//   step(lr):          theta <- theta*(1 - lr*wd);  m <- b1*m + (1-b1)*g
//                      ratio = min(|m| / (rho*bs*hc + 1e-15), 1);  theta <- theta - lr*sign(m)*ratio
// bs = global tokens per optimizer step (set_tokens_per_step). m and hc are fp32, no bias
// correction. With the Hutchinson estimator hc already estimates the Hessian diagonal of the mean
// loss, so the denominator is rho*max(hc, 0) + 1e-15 (bs is not applied; negative curvature
// saturates to a sign step), as in the paper's clip(m / max(gamma*h, eps), 1).
// The refresh itself (which batch, sampling, clipping, dp averaging) lives in optim/hessian.hpp.
#pragma once
#include "optim/optimizer.hpp"

namespace strata::optim {

class Sophia final : public Optimizer {
 public:
  enum class Estimator { Gnb, Hutchinson };
  Sophia(std::vector<ParamGroup> groups, double beta1, double beta2, double rho, int64_t hessian_interval,
         Estimator estimator);
  void step(double lr) override;
  void update_hessian() override;
  void set_tokens_per_step(double tokens) override { bs_ = tokens; }
  int64_t hessian_interval() const override { return interval_; }
  std::string hessian_estimator() const override { return estimator_ == Estimator::Gnb ? "gnb" : "hutchinson"; }
  // win_rate: fraction of coordinates with |m| < rho*bs*hc (not clipped); hessian_norm: L2 norm of hc.
  std::vector<std::pair<std::string, double>> metrics(const SumReduce& reduce = {},
                                                      const MetricWeight& weight = {}) const override;
  std::map<std::string, at::Tensor> state() const override;
  void load_state(const std::map<std::string, at::Tensor>& state) override;
  void visit_param_state(const StateVisitor& fn) override;

  int64_t steps() const { return steps_; }
  int64_t refreshes() const { return refreshes_; }
  const at::Tensor& momentum(size_t group, size_t i) const { return m_.at(group).at(i); }
  const at::Tensor& hessian(size_t group, size_t i) const { return hc_.at(group).at(i); }

 private:
  at::Tensor scaled_hessian(const at::Tensor& hc) const;  // the clip threshold's denominator without eps
  void scaled_hessian_out(at::Tensor& out, const at::Tensor& hc) const;
  // The step on same-shaped tensors (whole, or one slice of each); a and b are scratch.
  void update(at::Tensor& p, const at::Tensor& grad, at::Tensor& m, const at::Tensor& hc, at::Tensor& a, at::Tensor& b,
              double lr, double weight_decay) const;

  double beta1_, beta2_, rho_;
  int64_t interval_;
  Estimator estimator_;
  double bs_ = 0;
  int64_t steps_ = 0, refreshes_ = 0;
  std::vector<std::vector<at::Tensor>> m_, hc_;  // per group, per parameter; fp32
  at::Tensor scratch_;                           // [2, slice] for the CPU update's |m| / ratio and sign
};

Sophia::Estimator parse_estimator(const std::string& name);

// True when the curvature refresh follows step `step` (0-indexed): step % k == k - 1.
inline bool hessian_refresh_due(int64_t step, int64_t k) { return k > 0 && step % k == k - 1; }

}  // namespace strata::optim
