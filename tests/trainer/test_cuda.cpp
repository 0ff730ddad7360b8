// CUDA checks, run by scripts/gpu/check.sh on a GPU machine. Without a CUDA device every case prints
// "no CUDA device: skipped" and CTest reports the entry as skipped (SKIP_REGULAR_EXPRESSION).
#include <cmath>
#include <iostream>
#include <map>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "checkpoint/checkpoint.hpp"
#include "models/blocks/linear_cross_entropy.hpp"
#include "models/language_model.hpp"
#include "optim/adamw.hpp"
#include "snapshot/device_stage.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_dataset.hpp"
#include "tests/support/tiny_recipe.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {

bool no_cuda() {
  if (at::hasCUDA()) return false;
  std::cout << "no CUDA device: skipped" << std::endl;
  return true;
}

double rel(const at::Tensor& a, const at::Tensor& b) {
  auto x = a.to(at::kCPU).to(at::kDouble), y = b.to(at::kCPU).to(at::kDouble);
  return (x - y).norm().item<double>() / std::max(y.norm().item<double>(), 1e-30);
}

models::ModelConfig tiny(const std::string& arch) {
  models::ModelConfig c;
  c.arch = arch;
  c.n_layer = 2;
  c.d_model = 64;
  c.n_head = 4;
  c.n_kv_head = arch == "llama" ? 2 : 0;
  c.vocab_size = 97;
  c.max_seq_len = 32;
  return c;
}

trainer::RunConfig tiny_run(const std::string& data, const std::string& dir, const std::string& device,
                            const std::string& dtype, int64_t steps) {
  return testing::tiny_recipe(data, dir, steps, {"train.device=" + device, "train.dtype=" + dtype});
}

}  // namespace

namespace {

// Gradients of mean(logits^2) on `device` in fp32, relative to the same model in float64 on the CPU.
std::map<std::string, double> grad_error_vs_fp64(const std::string& arch, const at::Device& device, double* logit_err) {
  auto ref = models::make_model(tiny(arch));
  auto m = models::make_model(tiny(arch));
  ref->init_weights(7);
  m->init_weights(7);
  ref->to(at::kDouble);
  m->to(device);
  at::manual_seed(11);
  auto ids = at::randint(0, 97, {3, 24}, at::kLong);
  auto a = ref->forward(ids);
  auto b = m->forward(ids.to(device));
  *logit_err = rel(b, a);
  a.pow(2).mean().backward();
  b.pow(2).mean().backward();
  std::map<std::string, double> err;
  auto pa = ref->named_parameters(), pb = m->named_parameters();
  for (const auto& kv : pa) {
    // A key bias has an exactly-zero gradient in exact arithmetic (softmax ignores a per-row shift),
    // so only rounding noise is left to compare; measure it against the layer's weight gradient.
    const bool key_bias = kv.key().find("wk.bias") != std::string::npos;
    auto scale = key_bias ? pa[kv.key().substr(0, kv.key().size() - 4) + "weight"].grad() : kv.value().grad();
    auto d = (pb[kv.key()].grad().to(at::kCPU).to(at::kDouble) - kv.value().grad()).norm().item<double>();
    err[kv.key()] = d / std::max(scale.norm().item<double>(), 1e-30);
  }
  return err;
}

}  // namespace

TEST_CASE("CPU fp32 logits and gradients match a float64 reference (control for the CUDA case)", "[cuda][cpu]") {
  for (const std::string arch : {"gpt", "llama", "bert"}) {
    double logit_err = 0;
    for (const auto& [name, e] : grad_error_vs_fp64(arch, at::Device(at::kCPU), &logit_err)) {
      INFO(arch << " " << name);
      CHECK(e < 1e-4);
    }
    CHECK(logit_err < 1e-5);
  }
}

TEST_CASE("CUDA fp32 logits and gradients match a float64 reference for GPT, Llama (GQA) and BERT", "[cuda]") {
  if (no_cuda()) return;
  for (const std::string arch : {"gpt", "llama", "bert"}) {
    double logit_err = 0, worst = 0;
    for (const auto& [name, e] : grad_error_vs_fp64(arch, at::Device(at::kCUDA, 0), &logit_err)) {
      INFO(arch << " " << name);
      CHECK(e < 1e-4);
      worst = std::max(worst, e);
    }
    std::cout << arch << ": CUDA fp32 vs float64: logits " << logit_err << ", worst gradient " << worst << std::endl;
    CHECK(logit_err < 1e-5);
  }
}

TEST_CASE("bf16 autocast logits stay within bf16 rounding of fp32 on CUDA", "[cuda]") {
  if (no_cuda()) return;
  for (const std::string arch : {"gpt", "llama"}) {
    INFO(arch);
    auto m = models::make_model(tiny(arch));
    m->init_weights(3);
    m->to(at::Device(at::kCUDA, 0));
    m->eval();
    torch::NoGradGuard ng;
    auto ids = at::randint(0, 97, {2, 32}, at::kLong).cuda();
    auto ref = m->forward(ids);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    auto low = m->forward(ids);
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
    CHECK(low.scalar_type() == at::kBFloat16);
    const double r = rel(low, ref);
    CHECK(r > 0);  // bf16 really ran
    CHECK(r < 2e-2);
  }
}

TEST_CASE("fused linear cross-entropy on CUDA: fp32 equals the plain loss, bf16 within rounding, vocab padded", "[cuda]") {
  if (no_cuda()) return;
  for (const bool bf16 : {false, true}) {
    INFO("bf16 " << bf16);
    auto a = models::make_model(tiny("gpt")), b = models::make_model(tiny("gpt"));  // vocab 97: padded to 128
    a->to(at::Device(at::kCUDA, 0));
    b->to(at::Device(at::kCUDA, 0));
    a->eval();  // no dropout: both models compute the same function
    b->eval();
    auto ids = at::randint(0, 97, {4, 32}, at::kLong).cuda(), t = at::randint(0, 97, {4, 32}, at::kLong).cuda();
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, bf16);
    auto logits = a->forward(ids);
    auto ref = at::cross_entropy_loss(logits.view({-1, 97}).to(at::kFloat), t.view({-1}));
    models::LinearCrossEntropyOptions opt;
    opt.chunk_rows = 48;
    auto fused = models::linear_cross_entropy(b->head_features(b->forward_layers(b->forward_embed(ids), 0, 2)),
                                              *b->head_weight(), t, opt);
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
    CHECK(fused.scalar_type() == at::kFloat);
    CHECK(std::abs(fused.item<double>() - ref.item<double>()) < (bf16 ? 1e-2 : 1e-5) * ref.item<double>());
    ref.backward();
    fused.backward();
    auto pa = a->named_parameters(), pb = b->named_parameters();
    for (const auto& kv : pa) {
      INFO(kv.key());
      const auto& ga = kv.value().grad();  // absolute floor: the key bias's gradient is zero up to rounding
      CHECK((pb[kv.key()].grad() - ga).norm().item<double>() <= (bf16 ? 5e-2 : 1e-4) * ga.norm().item<double>() + 1e-5);
    }
  }
}

TEST_CASE("fused AdamW on CUDA equals the exact loop", "[cuda]") {
  if (no_cuda()) return;
  at::manual_seed(0);
  auto init = at::randn({64, 33}, at::kFloat).cuda();
  auto a = init.clone().set_requires_grad(true), b = init.clone().set_requires_grad(true);
  auto group = [](at::Tensor p) {
    optim::ParamGroup g;
    g.names = {"w"};
    g.params = {p};
    g.weight_decay = 0.1;
    return std::vector<optim::ParamGroup>{g};
  };
  optim::AdamW loop(group(a), 0.9, 0.95, 1e-8, false), fused(group(b), 0.9, 0.95, 1e-8, true);
  for (int s = 0; s < 5; ++s) {
    auto g = at::randn({64, 33}, at::kFloat).cuda();
    a.mutable_grad() = g.clone();
    b.mutable_grad() = g.clone();
    loop.step(1e-2);
    fused.step(1e-2);
  }
  CHECK(!at::equal(a, init));
  CHECK(rel(b, a) < 1e-6);
}

TEST_CASE("strata train on CUDA: fp32 follows the CPU run, bf16 learns, resume and checkpoints are exact", "[cuda]") {
  if (no_cuda()) return;
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  trainer::Trainer cpu(tiny_run(ds, (dir / "cpu").string(), "cpu", "fp32", 20), false);
  auto rc = cpu.run();
  trainer::Trainer gpu(tiny_run(ds, (dir / "gpu").string(), "cuda", "fp32", 20), false);
  auto rg = gpu.run();
  REQUIRE(rg.losses.size() == 20);
  double worst = 0;
  for (size_t i = 0; i < 20; ++i) worst = std::max(worst, std::abs(rg.losses[i] - rc.losses[i]) / rc.losses[i]);
  std::cout << "cuda fp32 vs cpu: max relative loss difference over 20 steps " << worst << std::endl;
  CHECK(worst < 1e-3);

  trainer::Trainer bf(tiny_run(ds, (dir / "bf16").string(), "cuda", "bf16", 20), false);
  auto rb = bf.run();
  std::cout << "cuda bf16: loss " << rb.losses.front() << " -> " << rb.losses.back() << " (fp32 " << rg.losses.back()
            << ")" << std::endl;
  CHECK(rb.losses.back() < rb.losses.front() - 1.5);
  CHECK(std::abs(rb.losses.back() - rg.losses.back()) < 0.05 * rg.losses.back());

  // 10 + resume + 10 on CUDA against 20 straight (CUDA RNG and data position restored).
  trainer::Trainer first(tiny_run(ds, (dir / "res").string(), "cuda", "bf16", 20), false);
  auto r1 = first.run(/*stop_after=*/10);
  trainer::Trainer second(tiny_run(ds, (dir / "res").string(), "cuda", "bf16", 20), true);
  auto r2 = second.run();
  REQUIRE(r2.losses.size() == 10);
  double drift = 0;
  for (size_t i = 0; i < 10; ++i) drift = std::max(drift, std::abs(r2.losses[i] - rb.losses[10 + i]));
  std::cout << "cuda bf16 resume: max |loss difference| " << drift << std::endl;
  CHECK(drift < 1e-4);

  // The step-20 checkpoint holds the CUDA model's values, readable on a CPU-only machine.
  auto ck = checkpoint::load_checkpoint(dir / "bf16" / "checkpoints" / "step_20");
  size_t compared = 0;
  for (const auto& kv : bf.model().named_parameters()) {
    auto it = ck.tensors.find("model." + kv.key());
    if (it == ck.tensors.end()) it = ck.tensors.find(kv.key());
    REQUIRE(it != ck.tensors.end());
    CHECK(it->second.device().is_cpu());
    CHECK(at::equal(it->second, kv.value().detach().cpu()));
    ++compared;
  }
  CHECK(compared > 10);
}

TEST_CASE("snapshot staging on CUDA: pinned buffers on a side stream, after the producing work, reused", "[cuda][snapshot]") {
  if (no_cuda()) return;
  const at::Device dev(at::kCUDA, 0);
  at::manual_seed(5);
  auto a = at::randn({1024, 1024}, at::TensorOptions().device(dev));
  checkpoint::CheckpointState st;
  // Queued on the current stream right before staging: the side stream must wait for it.
  st.tensors["prod"] = at::matmul(a, a);
  st.tensors["bf16"] = at::randn({33, 17}, at::TensorOptions().device(dev)).to(at::kBFloat16);
  st.tensors["view"] = at::randn({8, 12}, at::TensorOptions().device(dev)).t();  // non-contiguous
  st.tensors["cpu"] = at::arange(5, at::kLong);
  std::map<std::string, at::Tensor> want;
  for (const auto& [k, v] : st.tensors) want[k] = v;  // the device originals
  const void* cpu_ptr = st.tensors["cpu"].data_ptr();

  snapshot::DeviceStager stager;
  REQUIRE(stager.stage(st));
  stager.wait();
  for (const auto& [k, v] : st.tensors) {
    REQUIRE(v.device().is_cpu());
    if (k != "cpu") CHECK(v.is_pinned());
    CHECK(at::equal(v, want[k].cpu()));
  }
  CHECK(st.tensors["cpu"].data_ptr() == cpu_ptr);
  CHECK(stager.pinned_bytes() == (1024 * 1024 * 4 + 33 * 17 * 2 + 8 * 12 * 4));

  // The next snapshot refills the same buffers with the new values.
  const void* buf = st.tensors["prod"].data_ptr();
  checkpoint::CheckpointState next;
  next.tensors["prod"] = want["prod"] * 2;
  REQUIRE(stager.stage(next));
  stager.wait();
  CHECK(next.tensors["prod"].data_ptr() == buf);
  CHECK(at::equal(next.tensors["prod"], (want["prod"] * 2).cpu()));
}
