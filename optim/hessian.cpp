#include "optim/hessian.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "optim/grad_clip.hpp"
#include "optim/zero1.hpp"

namespace strata::optim {

namespace {

// splitmix64's finalizer: one well-mixed key per (refresh seed, parameter index).
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Probe values for local flat elements [j0, j0 + n) of a parameter of local sizes `sizes` that holds
// `slice` of the full tensor: the element's index in the full tensor is hashed.
at::Tensor probe_chunk(uint64_t key, const std::vector<int64_t>& sizes, const ProbeSlice& slice, int64_t j0, int64_t n,
                       const std::string& kind, at::Device device) {
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(device);
  auto j = at::arange(j0, j0 + n, i64);
  at::Tensor global = j, pad;
  if (slice.dim >= 0) {
    int64_t inner = 1;
    for (size_t d = static_cast<size_t>(slice.dim) + 1; d < sizes.size(); ++d) inner *= sizes[d];
    const int64_t local = sizes[static_cast<size_t>(slice.dim)];
    auto k = at::remainder(j, inner), rest = at::div(j, inner, "floor");
    auto c = at::remainder(rest, local) + slice.start, o = at::div(rest, local, "floor");
    global = (o * slice.full + c) * inner + k;
    pad = c >= slice.full;
  }
  at::Tensor u;
  if (kind == "rademacher") {
    u = at::bitwise_right_shift(counter_hash32(key, global), 31).to(at::kDouble).mul_(2).sub_(1);
  } else {
    // Box-Muller from two 32-bit uniforms in (0, 1) per element.
    auto u1 = (counter_hash32(key, global * 2).to(at::kDouble) + 0.5) / 4294967296.0;
    auto u2 = (counter_hash32(key, global * 2 + 1).to(at::kDouble) + 0.5) / 4294967296.0;
    u = at::sqrt(-2.0 * at::log(u1)) * at::cos(2.0 * M_PI * u2);
  }
  return pad.defined() ? u.masked_fill_(pad, 0.0) : u;
}

}  // namespace

std::vector<at::Tensor> hutchinson_probes(const std::vector<at::Tensor>& params, uint64_t seed, const std::string& kind,
                                          const ProbeSliceOf& slice_of) {
  if (kind != "rademacher" && kind != "gaussian")
    fail("optim.hutchinson_probe = '{}' is not one of: rademacher, gaussian", kind);
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  constexpr int64_t kChunk = int64_t{1} << 22;  // bounded int64/fp64 temporaries
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    const ProbeSlice slice = slice_of ? slice_of(p) : ProbeSlice{};
    if (slice.dim >= p.dim()) fail("hutchinson_probes: parameter {} has {} dimensions, its slice is along {}", i, p.dim(), slice.dim);
    const uint64_t key = mix64(seed + 0x9E3779B97F4A7C15ULL * (i + 1));
    const auto sizes = p.sizes().vec();
    auto u = at::empty({p.numel()}, p.options().requires_grad(false));
    for (int64_t j0 = 0; j0 < p.numel(); j0 += kChunk) {
      const int64_t n = std::min(kChunk, p.numel() - j0);
      u.narrow(0, j0, n).copy_(probe_chunk(key, sizes, slice, j0, n, kind, p.device()));
    }
    out.push_back(u.view(p.sizes()));
  }
  return out;
}

std::vector<at::Tensor> hutchinson_probes(const std::vector<at::Tensor>& params, at::Generator& gen,
                                          const std::string& kind, const ProbeSliceOf& slice_of) {
  return hutchinson_probes(params, draw_refresh_seed(gen), kind, slice_of);
}

std::vector<at::Tensor> hessian_vector_product(const at::Tensor& loss, const std::vector<at::Tensor>& params,
                                               const std::vector<at::Tensor>& u, const HvpDot& dot_of) {
  if (u.size() != params.size()) fail("hessian_vector_product: {} probes for {} parameters", u.size(), params.size());
  auto grads = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true, /*create_graph=*/true,
                                     /*allow_unused=*/true);
  std::vector<at::Tensor> terms(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    if (grads[i].defined() && grads[i].requires_grad())  // else no second-order path to this input
      terms[i] = (grads[i] * u[i]).sum();
  at::Tensor dot;
  if (dot_of) {
    dot = dot_of(params, terms);
  } else {
    for (const auto& t : terms)
      if (t.defined()) dot = dot.defined() ? dot + t : t;
  }
  std::vector<at::Tensor> hv(params.size());
  if (dot.defined() && dot.requires_grad()) {
    auto second = torch::autograd::grad({dot}, params, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                        /*allow_unused=*/true);
    for (size_t i = 0; i < params.size(); ++i) hv[i] = second[i];
  }
  for (size_t i = 0; i < params.size(); ++i)
    if (!hv[i].defined()) hv[i] = at::zeros_like(params[i]);
  return hv;
}

RefreshComm data_parallel_refresh(Optimizer& opt, parallel::DataParallel* dp) {
  RefreshComm c;
  if (!dp) return c;
  c.dp_rank = dp->group().rank();
  c.dp_size = dp->group().size();
  // The reducer's hooks idle outside a training step; arming it and finishing at once treats every
  // gradient as not yet seen, so finish() packs and reduces them all (and marks the missing ones).
  c.average = [dp](const std::vector<at::Tensor>&) {
    dp->set_sync(true);
    dp->finish();
  };
  if (auto* zero = dynamic_cast<Zero1*>(&opt)) {
    c.clip_params = zero->shard_params();  // their grads view the reduced shards
    c.clip_group = dp->group_ptr().get();
  }
  return c;
}

double refresh_gnb(Optimizer& opt, const std::vector<at::Tensor>& params, int64_t micro_steps,
                   const std::function<at::Tensor(int64_t)>& logits_of, at::Generator& gen, double grad_clip,
                   const RefreshComm& comm) {
  if (comm.dp_size < 1 || comm.dp_rank < 0 || comm.dp_rank >= comm.dp_size)
    fail("refresh_gnb: dp rank {} of {} is not a valid layout", comm.dp_rank, comm.dp_size);
  opt.zero_grad();
  double loss_sum = 0;
  const GnbLabels labels{draw_refresh_seed(gen), comm.dp_rank, comm.dp_size, comm.vocab};
  for (int64_t a = 0; a < micro_steps; ++a) {
    auto loss = labels.loss(logits_of(a), a);
    (loss / static_cast<double>(micro_steps)).backward();
    loss_sum += loss.detach().item<double>();
  }
  if (comm.average) comm.average(params);
  if (comm.sync) comm.sync();
  if (comm.clip) comm.clip(grad_clip);
  else clip_grad_norm(comm.clip_params.empty() ? params : comm.clip_params, grad_clip, comm.clip_group);
  opt.update_hessian();
  opt.zero_grad();
  return loss_sum / static_cast<double>(micro_steps);
}

void refresh_hutchinson(Optimizer& opt, const std::vector<at::Tensor>& params, int64_t micro_steps,
                        const std::function<at::Tensor(int64_t)>& loss_of, at::Generator& gen,
                        const std::string& probe, const RefreshComm& comm) {
  opt.zero_grad();
  auto u = hutchinson_probes(params, gen, probe, comm.probe_slice);
  std::vector<at::Tensor> hv;
  for (int64_t a = 0; a < micro_steps; ++a) {
    auto part = hessian_vector_product(loss_of(a), params, u, comm.hvp_dot);
    if (hv.empty()) hv = std::move(part);
    else for (size_t i = 0; i < hv.size(); ++i) hv[i].add_(part[i]);
  }
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      auto est = u[i] * hv[i] / static_cast<double>(micro_steps);
      at::Tensor p = params[i];
      if (p.grad().defined()) p.mutable_grad().copy_(est);
      else p.mutable_grad() = est;
    }
  }
  if (comm.average) comm.average(params);
  if (comm.sync) comm.sync();
  opt.update_hessian();
  opt.zero_grad();
}

}  // namespace strata::optim
