#include "models/blocks/norm.hpp"

#include <ATen/ATen.h>

namespace strata::models {

NormImpl::NormImpl(int64_t dim, double e, bool is_rms, bool with_bias) : eps(e), rms(is_rms) {
  weight = register_parameter("weight", at::ones({dim}));
  if (!rms && with_bias) bias = register_parameter("bias", at::zeros({dim}));
}

at::Tensor NormImpl::forward(const at::Tensor& x) {
  if (!rms) return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
  // CUDA, fp32 stream (the residual stream is fp32, also under autocast): ATen's fused kernel, one
  // pass forward and one backward instead of six elementwise ones; the same formula.
  if (x.is_cuda() && x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat)
    return at::rms_norm(x, {x.size(-1)}, weight, eps);
  // RMSNorm in fp32 for stability, cast back to the input dtype (as in Meta's reference).
  auto xf = x.to(at::kFloat);
  auto y = xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return y.to(x.scalar_type()) * weight;
}

}  // namespace strata::models
