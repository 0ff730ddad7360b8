// Curvature estimators for Sophia and the refresh that feeds them (specs/sophia.md §2-3).
//
// GNB (Sophia-G): labels are SAMPLED from the model's own softmax (fp32), the loss is the mean
// cross-entropy against them, and the (dp-averaged, norm-clipped) gradient is squared by
// Optimizer::update_hessian(). Hutchinson (Sophia-H): a probe u (Rademacher or N(0, I)) and the
// Hessian-vector product H u by double backward (create_graph); the estimate u * (H u) goes to
// update_hessian() unsquared. Randomness comes only from the caller's generator (a CPU
// at::Generator, so it is device-independent and its state can be checkpointed).
//
// Layout invariance (a refresh is the same for any dp or tp degree): every rank holds the same
// generator state and draws one seed per refresh from it; GNB labels are a function of (seed,
// global position, global vocabulary id) (optim/gnb_sampler.hpp), so each dp rank samples its own
// rows and each tp rank its vocabulary shard, and the labels equal one process's. Hutchinson uses
// one probe per refresh on every rank, so the dp average of u * (H_r u) is u * (H u) of the global
// batch; the probe is a counter hash of (seed, parameter index, element index in the full tp = 1
// tensor), so a tp rank draws exactly its slice of the tp = 1 probe (ProbeSlice).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "optim/gnb_sampler.hpp"
#include "optim/optimizer.hpp"
#include "parallel/data_parallel.hpp"
#include "parallel/process_group.hpp"

namespace strata::optim {

// Which part of the full (tp = 1) tensor a parameter holds: elements [start, start + p.size(dim))
// of dimension `dim`, whose full size is `full` (elements at or past `full` are vocabulary padding
// and get probe 0). dim < 0: the whole tensor.
struct ProbeSlice {
  int64_t dim = -1, full = 0, start = 0;
};
using ProbeSliceOf = std::function<ProbeSlice(const at::Tensor& param)>;

// One probe per parameter, shaped and placed like it: Rademacher (+-1) or standard normal. Element
// e of parameter i (e its index in the full tensor) is a function of (seed, i, e) only.
std::vector<at::Tensor> hutchinson_probes(const std::vector<at::Tensor>& params, uint64_t seed,
                                          const std::string& kind, const ProbeSliceOf& slice_of = {});
// The same with the seed drawn from `gen` (draw_refresh_seed).
std::vector<at::Tensor> hutchinson_probes(const std::vector<at::Tensor>& params, at::Generator& gen,
                                          const std::string& kind, const ProbeSliceOf& slice_of = {});

// The scalar whose gradient is H u, from terms[i] = <grad_i, u_i> (undefined: no second-order path
// to params[i]). Empty: the plain sum. Tensor parallelism sums over the tp group (differentiably)
// the terms of parameters whose gradients are parts, and adds the others once.
using HvpDot = std::function<at::Tensor(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& terms)>;

// H u for the Hessian of `loss` in `params` (double backward). Parameters the loss does not reach
// get zeros.
std::vector<at::Tensor> hessian_vector_product(const at::Tensor& loss, const std::vector<at::Tensor>& params,
                                               const std::vector<at::Tensor>& u, const HvpDot& dot_of = {});

// Averages every p.grad() in place over the data-parallel group (empty on one rank). The trainer
// supplies the same reduction its training step uses, e.g. a ProcessGroup all_reduce with Avg.
using GradAverage = std::function<void(const std::vector<at::Tensor>& params)>;

// How a refresh runs under data parallelism (defaults: one rank).
struct RefreshComm {
  GradAverage average;                  // dp average of the estimate's gradients (empty: one rank)
  std::vector<at::Tensor> clip_params;  // whose grads the GNB clip sees after averaging (empty: params)
  parallel::ProcessGroup* clip_group = nullptr;  // clip_params are disjoint parts summed over it (ZeRO-1)
  int64_t dp_rank = 0, dp_size = 1;     // GNB: which rows of the global batch this rank samples
  // Tensor parallelism: the logits are this rank's vocabulary shard (GNB samples across the tp group
  // and takes the vocab-parallel loss); `sync` runs after the dp averaging (the training step's tp
  // gradient sums) and `clip` replaces the clip above (the whole model's norm, tp shards counted once).
  const VocabSplit* vocab = nullptr;
  std::function<void()> sync;
  std::function<double(double max_norm)> clip;
  // Hutchinson under tensor parallelism: each parameter's part of the full probe, and the scalar
  // <grad, u> of the whole model (parallel/tp_hutchinson.hpp fills both).
  ProbeSliceOf probe_slice;
  HvpDot hvp_dot;
};
// The reduction the training step itself uses: the reducer's buckets (all-reduce, or under ZeRO-1
// reduce-scatter into the shards the Zero1 optimizer `opt` steps, clipped over the dp group).
// dp == nullptr: one rank.
RefreshComm data_parallel_refresh(Optimizer& opt, parallel::DataParallel* dp);

// The official loop's GNB refresh: for each of `micro_steps` micro-batches, logits_of(a) runs the
// forward pass on the refresh batch (all micro-batches the same shape); one seed drawn from `gen`,
// labels sampled for rows (a * dp_size + dp_rank) of the global batch (GnbLabels); backward of the
// sampled-label loss / micro_steps; dp averaging (and comm.sync); clip the global grad norm to
// grad_clip (0 = off); opt.update_hessian(); zero the gradients. Returns this rank's mean
// sampled-label loss.
double refresh_gnb(Optimizer& opt, const std::vector<at::Tensor>& params, int64_t micro_steps,
                   const std::function<at::Tensor(int64_t)>& logits_of, at::Generator& gen, double grad_clip,
                   const RefreshComm& comm = {});
// The Hutchinson refresh: one probe u, H u accumulated over the micro-batches' losses loss_of(a)
// (averaged), p.grad = u * (H u), dp averaging (and comm.sync: the tp sums of partial gradients),
// opt.update_hessian(), zero the gradients. Under tp the losses must be twice differentiable
// (parallel::vocab_parallel_cross_entropy_twice_differentiable).
void refresh_hutchinson(Optimizer& opt, const std::vector<at::Tensor>& params, int64_t micro_steps,
                        const std::function<at::Tensor(int64_t)>& loss_of, at::Generator& gen,
                        const std::string& probe, const RefreshComm& comm = {});

}  // namespace strata::optim
