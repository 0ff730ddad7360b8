// AdamW with PyTorch semantics (specs/sophia.md §2): decoupled weight decay multiplied by lr,
// bias-corrected moments, eps added to sqrt(v_hat). `fused` (optim.fused, on by default, CPU and
// CUDA) = ATen's at::_fused_adamw_: one pass over p, grad, m and v per group, multi-threaded on CPU,
// one kernel on CUDA; deterministic, and each element's result does not depend on where it sits in
// its tensor, so ZeRO-1's shards update exactly like whole tensors. Tensors the kernel cannot take
// (non-contiguous) and `fused = false` use the exact loop: torch.optim.AdamW's single-tensor update,
// op for op, bitwise, run in cache-sized slices of each contiguous fp32 CPU tensor (same bits, fewer
// passes over memory). The two differ in the last bits (fused computes in one expression).
#pragma once
#include "optim/optimizer.hpp"

namespace strata::optim {

// The per-step constants of one parameter group's update.
struct AdamWScalars {
  bool decays;
  double decay, w1, beta2, w2, bc2_sqrt, eps, step_size;  // step_size = -lr / bc1
};

class AdamW final : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, double beta1, double beta2, double eps, bool fused = false);
  void step(double lr) override;
  std::map<std::string, at::Tensor> state() const override;
  void load_state(const std::map<std::string, at::Tensor>& state) override;
  void visit_param_state(const StateVisitor& fn) override;

 private:
  // The exact update of one parameter, in cache-sized slices when it is a contiguous fp32 CPU tensor.
  void update_exact(at::Tensor& p, const at::Tensor& grad, at::Tensor& m, at::Tensor& v, const AdamWScalars& k);

  double beta1_, beta2_, eps_;
  bool fused_;
  int64_t t_ = 0;
  std::vector<std::vector<at::Tensor>> steps_;  // fused path: per-parameter fp32 step counters, all = t_
  std::vector<std::vector<at::Tensor>> m_, v_;  // per group, per parameter
  at::Tensor scratch_;                          // exact path: the denominator of one slice
};

}  // namespace strata::optim
