// Sophia-H (Hutchinson curvature, optim/hessian.hpp) under tensor parallelism. The double backward
// passes through the tp regions because every tp autograd op is twice differentiable
// (tensor_parallel_ops.hpp) and the loss is vocab_parallel_cross_entropy_twice_differentiable. What
// remains is layout bookkeeping, so that tp = t computes the tp = 1 estimate:
//   - probes: each parameter's probe is its slice of the tp = 1 probe (ShardLayout -> ProbeSlice);
//   - the scalar <grad, u> whose gradient is H u: a term whose gradient is one of several parts on
//     the ranks (sharded parameters, KV units shared by several ranks, and with sequence
//     parallelism the replicated parameters) is summed over the tp group by the differentiable
//     reduce_from_tp_region; a term every rank holds whole (replicated parameters without sequence
//     parallelism) is added once. The resulting H u has the layout of a gradient, so the training
//     step's sync_grads() completes it.
#pragma once
#include <vector>

#include <ATen/core/Tensor.h>

#include "optim/hessian.hpp"
#include "parallel/parallelize.hpp"

namespace strata::parallel {

// This rank's part of the full tensor for parameter p (dim -1: held whole).
optim::ProbeSlice probe_slice(const TensorParallelPlan& plan, const at::Tensor& p);
// The whole model's sum of terms[i] (scalars, undefined = 0), differentiable, the same on every tp rank.
at::Tensor model_dot(const TensorParallelPlan& plan, const std::vector<at::Tensor>& params,
                     const std::vector<at::Tensor>& terms);
// Fills comm.probe_slice and comm.hvp_dot from `plan` (which must outlive comm); a no-op at tp = 1.
void use_tensor_parallel_hutchinson(optim::RefreshComm& comm, const TensorParallelPlan& plan);

}  // namespace strata::parallel
