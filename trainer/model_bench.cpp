#include "trainer/model_bench.hpp"

#include <chrono>
#include <iostream>
#include <thread>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/autograd.h>

#include "models/flops.hpp"
#include "models/language_model.hpp"
#include "trainer/recipe.hpp"

namespace strata::trainer {

double bench_model(const ModelBenchOptions& opt) {
  auto overrides = opt.overrides;
  overrides.push_back("train.seq_len=" + std::to_string(opt.seq_len));
  auto cfg = load_recipe(opt.recipe, overrides).model;
  const int threads = opt.threads > 0 ? static_cast<int>(opt.threads) : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(threads);
  at::manual_seed(0);
  auto model = models::make_model(cfg);
  model->train();
  auto ids = at::randint(0, cfg.vocab_size, {opt.batch, opt.seq_len}, at::kLong);
  auto targets = at::randint(0, cfg.vocab_size, {opt.batch, opt.seq_len}, at::kLong);
  std::cout << fmt::format("config: arch={} n_layer={} d_model={} n_head={} n_kv_head={} d_ff={} vocab={} tie={} params={}",
                           cfg.arch, cfg.n_layer, cfg.d_model, cfg.n_head, cfg.kv_heads(), cfg.ffn_hidden(), cfg.vocab_size,
                           cfg.tie_embeddings ? 1 : 0, models::param_count(cfg))
            << std::endl;
  using Clock = std::chrono::steady_clock;
  Clock::time_point start;
  for (int64_t s = 0; s < opt.warmup + opt.steps; ++s) {
    if (s == opt.warmup) start = Clock::now();
    for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    auto logits = model->forward(ids);
    at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), targets.view({-1})).backward();
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const double tps = opt.steps * opt.batch * opt.seq_len / secs;
  std::cout << fmt::format("strata: {:.1f} tokens/s forward+backward ({} threads, batch {}, seq {}, {} steps, {:.2f} GFLOP/s)",
                           tps, threads, opt.batch, opt.seq_len, opt.steps, tps * models::flops_per_token(cfg, opt.seq_len) / 1e9)
            << std::endl;
  return tps;
}

}  // namespace strata::trainer
