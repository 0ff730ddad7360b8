#include "models/blocks/linear_cross_entropy.hpp"

#include <algorithm>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "models/blocks/vocab_projection.hpp"

namespace strata::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The products' dtype: autocast's when it is on for the features' device, else the features'.
at::ScalarType compute_dtype(const at::Tensor& features) {
  const auto dev = features.device().type();
  if (at::autocast::is_autocast_enabled(dev)) return at::autocast::get_autocast_dtype(dev);
  return features.scalar_type();
}

struct Pass {
  at::Tensor loss_sum;  // fp32 scalar: sum over valid rows of (logsumexp - target logit)
  at::Tensor d_features;  // [N, dim] in the features' dtype (defined when asked for)
  at::Tensor d_weight;  // [padded vocab, dim] fp32 (defined when asked for)
};

// One pass over row chunks of features [N, dim] (compute dtype) against the padded weight
// [Vp, dim] (compute dtype, rows >= vocab zero). inv_valid: fp32 scalar 1 / max(n_valid, 1).
Pass chunked_pass(const at::Tensor& h, const at::Tensor& wp, const at::Tensor& targets, int64_t vocab,
                  const LinearCrossEntropyOptions& opt, int64_t rows, const at::Tensor& inv_valid,
                  at::ScalarType features_dtype, bool want_features, bool want_weight) {
  const int64_t n = h.size(0), padded = wp.size(0);
  Pass out;
  out.loss_sum = at::zeros({}, h.options().dtype(at::kFloat));
  if (want_features) out.d_features = at::empty(h.sizes(), h.options().dtype(features_dtype));
  if (want_weight) out.d_weight = at::zeros(wp.sizes(), wp.options().dtype(at::kFloat));
  const auto wt = wp.t();
  for (int64_t start = 0; start < n; start += rows) {
    const int64_t c = std::min(rows, n - start);
    auto hc = h.narrow(0, start, c);
    auto t = targets.narrow(0, start, c);
    auto lf = at::mm(hc, wt).to(at::kFloat);  // [c, Vp]; a fresh tensor we may overwrite
    if (padded > vocab) lf.narrow(1, vocab, padded - vocab).fill_(-std::numeric_limits<float>::infinity());
    auto lse = at::logsumexp(lf, {1});
    auto valid = t.ne(opt.ignore_index);
    auto safe = t.masked_fill(valid.logical_not(), 0).unsqueeze(1);
    auto target_logit = lf.gather(1, safe).squeeze(1);
    out.loss_sum.add_(at::where(valid, lse - target_logit, at::zeros({}, lse.options())).sum());
    if (!want_features && !want_weight) continue;
    // dloss/dlogits = (softmax - onehot(target)) / n_valid on valid rows, 0 on ignored ones.
    auto w = valid.to(at::kFloat).mul_(inv_valid).unsqueeze(1);  // [c, 1]
    auto g = lf.sub_(lse.unsqueeze(1)).exp_().mul_(w);
    g.scatter_add_(1, safe, w.neg());
    g = g.to(h.scalar_type());
    if (want_features) out.d_features.narrow(0, start, c).copy_(at::mm(g, wp));
    if (want_weight) out.d_weight.add_(at::mm(g.t(), hc));
  }
  return out;
}

struct Prepared {
  at::Tensor h, wp, targets, inv_valid, n_valid;
  int64_t vocab = 0, rows = 0;
};

Prepared prepare(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& targets,
                 const LinearCrossEntropyOptions& opt) {
  if (weight.dim() != 2) fail("linear_cross_entropy: weight must be [vocab, dim], got {} dims", weight.dim());
  const int64_t dim = weight.size(1), vocab = weight.size(0);
  if (features.size(-1) != dim)
    fail("linear_cross_entropy: features end in {} but the weight is [{}, {}]", features.size(-1), vocab, dim);
  if (features.numel() / dim != targets.numel())
    fail("linear_cross_entropy: {} feature rows but {} targets", features.numel() / dim, targets.numel());
  if (targets.scalar_type() != at::kLong) fail("linear_cross_entropy: targets must be int64");
  if (opt.chunk_rows < 0) fail("linear_cross_entropy: chunk_rows {} must be >= 0", opt.chunk_rows);
  Prepared p;
  const auto cdt = compute_dtype(features);
  p.h = features.reshape({-1, dim}).to(cdt);
  p.targets = targets.reshape({-1});
  p.vocab = vocab;
  const int64_t align = opt.align > 0 ? opt.align : vocab_align_for(features);
  const int64_t padded = (vocab + align - 1) / align * align;
  auto w = weight.to(cdt);
  p.wp = padded > vocab ? at::constant_pad_nd(w, {0, 0, 0, padded - vocab}, 0.0) : w;
  const int64_t n = p.h.size(0);
  p.rows = opt.chunk_rows > 0 ? opt.chunk_rows : std::max<int64_t>(64, (int64_t{1} << 24) / std::max<int64_t>(padded, 1));
  p.rows = std::max<int64_t>(1, std::min(p.rows, n));
  p.n_valid = p.targets.ne(opt.ignore_index).sum().to(at::kFloat);
  p.inv_valid = p.n_valid.clamp_min(1).reciprocal();
  return p;
}

struct LinearCrossEntropyFn : torch::autograd::Function<LinearCrossEntropyFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& features, const at::Tensor& weight,
                            const at::Tensor& targets, const LinearCrossEntropyOptions* opt) {
    auto p = prepare(features, weight, targets, *opt);
    auto pass = chunked_pass(p.h, p.wp, p.targets, p.vocab, *opt, p.rows, p.inv_valid, features.scalar_type(),
                             features.requires_grad(), weight.requires_grad());
    at::Tensor dh, dw;
    if (pass.d_features.defined()) dh = pass.d_features.view(features.sizes());
    if (pass.d_weight.defined()) dw = pass.d_weight.narrow(0, 0, p.vocab).to(weight.scalar_type());
    ctx->saved_data["dh"] = dh;
    ctx->saved_data["dw"] = dw;
    return pass.loss_sum / p.n_valid;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto scaled = [&](const char* key) {
      auto g = ctx->saved_data[key].toTensor();
      return g.defined() ? g * grad[0].to(g.scalar_type()) : g;
    };
    return {scaled("dh"), scaled("dw"), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::optional<at::Tensor> plain_output_weight(const Linear& head, const Embedding& tok_emb) {
  if (head) return head->comm ? std::nullopt : std::optional<at::Tensor>(head->weight);
  return tok_emb->comm ? std::nullopt : std::optional<at::Tensor>(tok_emb->weight);
}

at::Tensor linear_cross_entropy(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& targets,
                                const LinearCrossEntropyOptions& opt) {
  const bool grads = at::GradMode::is_enabled() && (features.requires_grad() || weight.requires_grad());
  if (grads) return LinearCrossEntropyFn::apply(features, weight, targets, &opt);
  auto p = prepare(features, weight, targets, opt);
  auto pass = chunked_pass(p.h, p.wp, p.targets, p.vocab, opt, p.rows, p.inv_valid, features.scalar_type(), false, false);
  return pass.loss_sum / p.n_valid;
}

}  // namespace strata::models
