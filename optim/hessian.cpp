#include "optim/hessian.hpp"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "optim/grad_clip.hpp"
#include "optim/zero1.hpp"

namespace strata::optim {

std::vector<at::Tensor> hutchinson_probes(const std::vector<at::Tensor>& params, at::Generator& gen,
                                          const std::string& kind) {
  std::vector<at::Tensor> out;
  const auto cpu_float = at::TensorOptions().dtype(at::kFloat);
  for (const auto& p : params) {
    at::Tensor u;
    if (kind == "rademacher") u = at::bernoulli(at::full(p.sizes(), 0.5, cpu_float), gen).mul_(2).sub_(1);
    else if (kind == "gaussian") u = at::randn(p.sizes(), gen, cpu_float);
    else fail("optim.hutchinson_probe = '{}' is not one of: rademacher, gaussian", kind);
    out.push_back(u.to(p.device(), p.scalar_type()));
  }
  return out;
}

std::vector<at::Tensor> hessian_vector_product(const at::Tensor& loss, const std::vector<at::Tensor>& params,
                                               const std::vector<at::Tensor>& u) {
  if (u.size() != params.size()) fail("hessian_vector_product: {} probes for {} parameters", u.size(), params.size());
  auto grads = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true, /*create_graph=*/true,
                                     /*allow_unused=*/true);
  std::vector<at::Tensor> used_params;
  at::Tensor dot;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!grads[i].defined() || !grads[i].requires_grad()) continue;  // no second-order path to this input
    auto term = (grads[i] * u[i]).sum();
    dot = dot.defined() ? dot + term : term;
  }
  std::vector<at::Tensor> hv(params.size());
  if (dot.defined()) {
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
  auto u = hutchinson_probes(params, gen, probe);
  std::vector<at::Tensor> hv;
  for (int64_t a = 0; a < micro_steps; ++a) {
    auto part = hessian_vector_product(loss_of(a), params, u);
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
  opt.update_hessian();
  opt.zero_grad();
}

}  // namespace strata::optim
