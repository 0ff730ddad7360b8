// AdamW with PyTorch semantics (specs/sophia.md §2): decoupled weight decay multiplied by lr,
// bias-corrected moments, eps added to sqrt(v_hat). `fused` = use at::_fused_adamw_ (one kernel
// per group; the registry asks for it on CUDA when optim.fused is on); otherwise a per-tensor
// loop that is exact and bitwise reproducible on CPU (torch.optim.AdamW's single-tensor update, op
// for op), run in cache-sized slices of each contiguous fp32 CPU tensor (same bits, fewer passes
// over memory).
#pragma once
#include "optim/optimizer.hpp"

namespace strata::optim {

class AdamW final : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, double beta1, double beta2, double eps, bool fused = false);
  void step(double lr) override;
  std::map<std::string, at::Tensor> state() const override;
  void load_state(const std::map<std::string, at::Tensor>& state) override;
  void visit_param_state(const StateVisitor& fn) override;

 private:
  void step_fused(double lr);
  void step_exact(double lr);  // the exact per-tensor update, in cache-sized slices on CPU

  double beta1_, beta2_, eps_;
  bool fused_;
  int64_t t_ = 0;
  std::vector<std::vector<at::Tensor>> steps_;  // fused path: per-parameter fp32 step counters (= t_)
  std::vector<std::vector<at::Tensor>> m_, v_;  // per group, per parameter
  at::Tensor scratch_;                          // exact path: the denominator of one slice
};

}  // namespace strata::optim
