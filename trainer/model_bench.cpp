#include "trainer/model_bench.hpp"

#include <chrono>
#include <iostream>
#include <thread>

#include <sys/resource.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/autograd.h>

#include "checkpoint/safetensors.hpp"
#include "core/error.hpp"
#include "models/flops.hpp"
#include "models/language_model.hpp"
#include "optim/optimizer.hpp"
#include "trainer/autocast.hpp"
#include "trainer/cpu_allocator.hpp"
#include "trainer/device_info.hpp"
#include "trainer/fused_loss.hpp"
#include "trainer/recipe.hpp"

namespace strata::trainer {
namespace {
std::string step_kind(const std::string& optimizer) {
  if (optimizer == "adamw") return "train step (fwd+bwd+AdamW)";
  if (optimizer == "adamw-exact") return "train step (fwd+bwd+exact AdamW)";
  if (optimizer == "sophia") return "train step (fwd+bwd+Sophia update, no refresh pass)";
  return "forward+backward";
}

at::Device bench_device(const std::string& name) {
  if (name == "cpu") return at::Device(at::kCPU);
  if (name == "cuda") {
    if (!at::hasCUDA()) fail("bench-model --device cuda: no CUDA device is available");
    return at::Device(at::kCUDA, 0);
  }
  fail("bench-model --device '{}': expected cpu or cuda", name);
}

}  // namespace

double bench_model(const ModelBenchOptions& opt) {
  auto overrides = opt.overrides;
  overrides.push_back("train.seq_len=" + std::to_string(opt.seq_len));
  auto cfg = load_recipe(opt.recipe, overrides).model;
  if (opt.dtype != "fp32" && opt.dtype != "bf16") fail("bench-model --dtype '{}': expected fp32 or bf16", opt.dtype);
  if (opt.optimizer != "none" && opt.optimizer != "adamw" && opt.optimizer != "adamw-exact" && opt.optimizer != "sophia")
    fail("bench-model --optimizer '{}': expected none, adamw, adamw-exact or sophia", opt.optimizer);
  const auto device = bench_device(opt.device);
  const bool bf16 = opt.dtype == "bf16";
  const int threads = opt.threads > 0 ? static_cast<int>(opt.threads) : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(threads);
  if (opt.cpu_cache && device.is_cpu()) install_cpu_caching_allocator();  // as the trainer does (CPU runs only)
  at::manual_seed(0);
  auto model = models::make_model(cfg);
  if (opt.fused_loss && !model->head_weight())
    fail("bench-model --fused-loss: model.arch '{}' has no plain output projection", cfg.arch);
  model->to(device);
  model->train();
  std::unique_ptr<optim::Optimizer> optimizer;
  if (opt.optimizer != "none") {
    std::vector<std::pair<std::string, at::Tensor>> named;
    for (const auto& kv : model->named_parameters()) named.emplace_back(kv.key(), kv.value());
    optim::OptimConfig oc;
    oc.name = opt.optimizer == "sophia" ? "sophia" : "adamw";
    oc.fused = opt.optimizer == "adamw";  // adamw-exact: the op-by-op loop (optim/adamw.hpp)
    optimizer = optim::make_optimizer(oc, optim::default_param_groups(named, oc.weight_decay));
    // Sophia: its per-step update only; the curvature refresh pass (every optim.hessian_interval steps,
    // a forward and backward on a sampled-label batch) is not run here.
    optimizer->set_tokens_per_step(static_cast<double>(opt.batch * opt.seq_len));
  }
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(device);
  auto ids = at::randint(0, cfg.vocab_size, {opt.batch, opt.seq_len}, lopt);
  auto targets = at::randint(0, cfg.vocab_size, {opt.batch, opt.seq_len}, lopt);
  if (!opt.save_init.empty()) {
    std::map<std::string, at::Tensor> init{{"__ids", ids}, {"__targets", targets}};
    for (const auto& kv : model->named_parameters()) init[kv.key()] = kv.value().detach();
    checkpoint::write_safetensors(opt.save_init, init);
  }
  std::cout << fmt::format("config: arch={} n_layer={} d_model={} n_head={} n_kv_head={} d_ff={} vocab={} tie={} params={}",
                           cfg.arch, cfg.n_layer, cfg.d_model, cfg.n_head, cfg.kv_heads(), cfg.ffn_hidden(), cfg.vocab_size,
                           cfg.tie_embeddings ? 1 : 0, models::param_count(cfg))
            << std::endl;
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now();
  auto minor_faults = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<int64_t>(ru.ru_minflt);
  };
  int64_t faults_start = minor_faults();
  at::Tensor loss;
  double first_loss = 0;
  for (int64_t s = 0; s < opt.warmup + opt.steps; ++s) {
    for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    {
      AutocastScope autocast(bf16, device.type());
      if (opt.fused_loss) {
        loss = fused_head_loss(*model, model->forward_layers(model->forward_embed(ids), 0, cfg.n_layer), targets);
      } else {
        auto logits = model->forward(ids);
        loss = at::cross_entropy_loss(logits.view({-1, logits.size(-1)}).to(at::kFloat), targets.view({-1}));
      }
    }
    loss.backward();
    if (optimizer) optimizer->step(1e-4);
    // Reading a value enqueued after the step waits for the device, so the clock brackets finished work.
    if (s == 0) first_loss = loss.item<double>();
    if (s + 1 == opt.warmup) start = Clock::now(), faults_start = minor_faults();
  }
  if (opt.steps > 0) loss.item<double>();
  const double faults_per_step = double(minor_faults() - faults_start) / double(std::max<int64_t>(opt.steps, 1));
  std::cout << fmt::format("first_loss: {:.9g}", first_loss) << std::endl;
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const double tps = opt.steps * opt.batch * opt.seq_len / secs;
  const double flops = tps * models::flops_per_token(cfg, opt.seq_len);
  std::string where = device.is_cuda() ? fmt::format("{} {}", accelerator_name(device), opt.dtype)
                                       : fmt::format("{} threads{}", threads, bf16 ? " bf16" : "");
  std::string mfu;
  if (device.is_cuda())
    if (auto peak = models::peak_bf16_flops(accelerator_name(device)); peak && bf16)
      mfu = fmt::format(", MFU {:.1f}% of {:.0f} TFLOP/s", 100.0 * flops / *peak, *peak / 1e12);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);  // ru_maxrss: KiB on Linux
  std::cout << fmt::format("strata: {:.1f} tokens/s {}{} ({}, batch {}, seq {}, {} steps, {:.2f} GFLOP/s{}, {:.1f} ms/step, "
                           "first loss {:.4f}, peak RSS {:.0f} MiB, {:.0f} page faults/step{})",
                           tps, step_kind(opt.optimizer),
                           opt.fused_loss ? " fused loss" : "", where, opt.batch, opt.seq_len, opt.steps, flops / 1e9, mfu,
                           1e3 * secs / std::max<int64_t>(opt.steps, 1), first_loss, ru.ru_maxrss / 1024.0, faults_per_step,
                           opt.cpu_cache || !device.is_cpu() ? "" : ", no CPU cache")
            << std::endl;
  return tps;
}

}  // namespace strata::trainer
