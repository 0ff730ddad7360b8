#include "models/init.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

namespace strata::models {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

void init_transformer(torch::nn::Module& model, const ModelConfig& cfg, uint64_t seed, InitOptions opt) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double resid_std = cfg.init_std / std::sqrt(2.0 * cfg.n_layer);
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    if (ends_with(name, "bias")) {  // ".bias" of a layer, or a bare bias such as BERT's mlm_bias
      p.zero_();
    } else if (name.find("norm") != std::string::npos && p.dim() == 1) {
      p.fill_(1.0);
    } else {
      bool resid = opt.scale_residual && (ends_with(name, "attn.wo.weight") || ends_with(name, "mlp.w2.weight"));
      const double sd = resid ? resid_std : cfg.init_std;
      // Draw on CPU with our generator so the result is identical on every device.
      auto w = at::empty(p.sizes(), at::kFloat).normal_(0.0, sd, gen);
      if (opt.truncate) {
        // Redraw values beyond 2 sd until none is left (a truncated normal).
        for (auto out = w.abs() > 2 * sd; out.any().item<bool>(); out = w.abs() > 2 * sd)
          w.masked_scatter_(out, at::empty({out.sum().item<int64_t>()}, at::kFloat).normal_(0.0, sd, gen));
      }
      p.copy_(w);
    }
  }
}

}  // namespace strata::models
