#include "parallel/tp_hutchinson.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "parallel/tensor_parallel_ops.hpp"

namespace strata::parallel {

optim::ProbeSlice probe_slice(const TensorParallelPlan& plan, const at::Tensor& p) {
  const auto* l = plan.layout_of(p);
  if (!l) return {};
  return {l->dim, l->full, l->starts.at(static_cast<size_t>(plan.ctx->group->rank()))};
}

at::Tensor model_dot(const TensorParallelPlan& plan, const std::vector<at::Tensor>& params,
                     const std::vector<at::Tensor>& terms) {
  if (params.size() != terms.size())
    fail("tensor parallelism: {} Hessian-vector terms for {} parameters (tp rank {})", terms.size(), params.size(),
         plan.ctx->group->rank());
  at::Tensor parts, whole;
  auto add = [](at::Tensor& acc, const at::Tensor& t) { acc = acc.defined() ? acc + t : t; };
  for (size_t i = 0; i < params.size(); ++i) {
    if (!terms[i].defined()) continue;
    const bool partial = plan.ctx->sequence_parallel || plan.copies.count(params[i].unsafeGetTensorImpl());
    add(partial ? parts : whole, terms[i].to(at::kDouble));
  }
  // Every rank takes part in the sum, with or without terms of its own.
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(params.empty() ? at::Device(at::kCPU) : params[0].device());
  if (!parts.defined()) parts = at::zeros({}, opts);
  auto dot = reduce_from_tp_region(parts.reshape({1}), *plan.ctx->group).reshape({});
  return whole.defined() ? dot + whole : dot;
}

void use_tensor_parallel_hutchinson(optim::RefreshComm& comm, const TensorParallelPlan& plan) {
  if (plan.tp() == 1) return;
  comm.probe_slice = [&plan](const at::Tensor& p) { return probe_slice(plan, p); };
  comm.hvp_dot = [&plan](const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& terms) {
    return model_dot(plan, params, terms);
  };
}

}  // namespace strata::parallel
