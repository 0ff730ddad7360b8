#include "models/blocks/attention.hpp"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "core/error.hpp"

namespace strata::models {

AttentionImpl::AttentionImpl(const ModelConfig& cfg, bool is_causal, bool use_rope)
    : head_dim(cfg.head_dim()), causal(is_causal), rope(use_rope), rope_theta(cfg.rope_theta), dropout(cfg.dropout) {
  const int64_t d = cfg.d_model, kv = cfg.kv_heads() * cfg.head_dim();
  wq = register_module("wq", Linear(d, d, cfg.bias, LinearRole::Column));
  wk = register_module("wk", Linear(d, kv, cfg.bias, LinearRole::Column));
  wv = register_module("wv", Linear(d, kv, cfg.bias, LinearRole::Column));
  wo = register_module("wo", Linear(d, d, cfg.bias, LinearRole::Row));
  wq->unit = wk->unit = wv->unit = wo->unit = head_dim;  // a tensor-parallel split keeps heads whole
}

RopeTables rope_tables(int64_t T, int64_t hd, double theta, int64_t offset, at::Device device) {
  auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  auto inv = at::pow(theta, -at::arange(0, hd, 2, opts) / static_cast<double>(hd));  // [hd/2]
  auto ang = at::outer(at::arange(offset, offset + T, opts), inv);                   // [T, hd/2]
  auto c = ang.cos(), s = ang.sin();
  return {at::stack({c, c}, -1).flatten(1), at::stack({-s, s}, -1).flatten(1)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTables& t) {
  const int64_t T = x.size(2), hd = x.size(3);
  if (t.cos.size(0) != T || t.cos.size(1) != hd)
    fail("apply_rope: tables for [{}, {}] but x is [.., {}, {}]", t.cos.size(0), t.cos.size(1), T, hd);
  auto xf = x.to(at::kFloat);
  auto swapped = xf.unflatten(-1, {hd / 2, 2}).flip(-1).flatten(-2);  // (x1, x0, x3, x2, ...)
  return (xf * t.cos + swapped * t.sin).to(x.scalar_type());
}

at::Tensor apply_rope(const at::Tensor& x, double theta, int64_t offset) {
  return apply_rope(x, rope_tables(x.size(2), x.size(3), theta, offset, x.device()));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const std::optional<at::Tensor>& key_padding_mask) {
  auto q = wq(x), k = wk(x), v = wv(x);
  // Shapes from the projections: a tensor-parallel shard has fewer heads, and under sequence
  // parallelism x is a chunk of the sequence that the projections gathered.
  const int64_t B = q.size(0), T = q.size(1);
  const int64_t hq = q.size(-1) / head_dim, hkv = k.size(-1) / head_dim;
  q = q.view({B, T, hq, head_dim}).transpose(1, 2);
  k = k.view({B, T, hkv, head_dim}).transpose(1, 2);
  v = v.view({B, T, hkv, head_dim}).transpose(1, 2);
  if (rope) {  // the tables depend on T and the device only: computed once, shared by q and k
    if (rope_T_ != T || rope_device_ != q.device()) {
      rope_tables_ = rope_tables(T, head_dim, rope_theta, 0, q.device());
      rope_T_ = T, rope_device_ = q.device();
    }
    q = apply_rope(q, rope_tables_);
    k = apply_rope(k, rope_tables_);
  }
  // Grouped-query attention: without a mask the SDPA kernels read each K/V head for its group of
  // query heads (enable_gqa; the CPU flash kernel and CUDA's flash kernel support it, same result);
  // with a mask the K/V heads are repeated, since CUDA's memory-efficient kernel has no GQA.
  const bool gqa = hkv != hq;
  if (gqa && key_padding_mask) {
    k = k.repeat_interleave(hq / hkv, 1);
    v = v.repeat_interleave(hq / hkv, 1);
  }
  std::optional<at::Tensor> mask;
  bool is_causal = causal;
  if (key_padding_mask) {
    auto m = key_padding_mask->view({B, 1, 1, T});
    if (causal) {
      m = m & at::ones({T, T}, m.options()).tril().view({1, 1, T, T});
      is_causal = false;
    }
    // A query that sees no real key (a left pad under a causal mask) would give a NaN row, and
    // 0 * NaN in the next layer would leak it into real tokens: every query also sees itself.
    mask = m | at::eye(T, m.options()).view({1, 1, T, T});
  }
  auto y = at::scaled_dot_product_attention(q, k, v, mask, is_training() ? dropout : 0.0, is_causal, std::nullopt,
                                           /*enable_gqa=*/gqa && !key_padding_mask);
  y = y.transpose(1, 2).reshape({B, T, hq * head_dim});
  return wo(y);
}

MathAttentionScope::MathAttentionScope() {
  auto& ctx = at::globalContext();
  flash_ = ctx.userEnabledFlashSDP(), mem_efficient_ = ctx.userEnabledMemEfficientSDP(), cudnn_ = ctx.userEnabledCuDNNSDP();
  ctx.setSDPUseFlash(false), ctx.setSDPUseMemEfficient(false), ctx.setSDPUseCuDNN(false);
}

MathAttentionScope::~MathAttentionScope() {
  auto& ctx = at::globalContext();
  ctx.setSDPUseFlash(flash_), ctx.setSDPUseMemEfficient(mem_efficient_), ctx.setSDPUseCuDNN(cudnn_);
}

}  // namespace strata::models
