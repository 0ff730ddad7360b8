// Sparse pre-training through the trainer: exact resume inside the pruning window, the SPDF dense
// phase (fresh optimizer) across a resume and under ZeRO-1, logged metrics, run metadata, refusals.
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "checkpoint/checkpoint.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_dataset.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

using namespace strata;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

trainer::RunConfig tiny(const std::string& data, const std::string& run_dir, int64_t steps, const std::string& extra) {
  return trainer::load_recipe_text(R"(
model: {n_layer: 2, d_model: 64, n_head: 4, vocab_size: 262, max_seq_len: 64}
train: {micro_batch: 4, grad_accum: 2, seq_len: 32, log_every: 5, eval_every: 0, eval_batches: 2, threads: 2}
optim: {lr: 0.003, weight_decay: 0.1}
schedule: {warmup_steps: 5}
)" + extra,
                                   "tiny.yaml",
                                   {"data.path=" + data, "run.dir=" + run_dir, "train.steps=" + std::to_string(steps)});
}

// The value of `key` in every metrics.jsonl row, by step.
std::map<int64_t, double> metric(const fs::path& run, const std::string& key) {
  std::map<int64_t, double> out;
  std::ifstream f(run / "metrics.jsonl");
  std::string line;
  auto value = [&](const std::string& k) {
    auto pos = line.find("\"" + k + "\":");
    return pos == std::string::npos ? std::nan("") : std::stod(line.substr(pos + k.size() + 3));
  };
  while (std::getline(f, line)) out[static_cast<int64_t>(value("step"))] = value(key);
  return out;
}

int64_t zeros_of(const at::Tensor& t) { return (t == 0).sum().item<int64_t>(); }

}  // namespace

TEST_CASE("gradual pruning: resume inside the pruning window equals the uninterrupted run bitwise", "[sparsity][trainer]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  const std::string sp = "sparsity: {method: gradual, sparsity: 0.5, prune_every: 2}\n";
  trainer::Trainer straight(tiny(ds, (dir / "a").string(), 40, sp), false);
  auto ra = straight.run();
  auto s = metric(dir / "a", "sparsity");
  REQUIRE(s.size() == 40);
  const int64_t stop = 18;
  REQUIRE(s[stop] > 0.0);   // inside the window: pruning has started ...
  REQUIRE(s[stop] < 0.45);  // ... and continues after the resume
  REQUIRE(s[40] == Approx(0.5).margin(1e-4));
  for (int64_t i = 2; i <= 40; ++i) REQUIRE(s[i] >= s[i - 1]);
  auto navg = metric(dir / "a", "n_avg"), eff = metric(dir / "a", "eff_flops");
  REQUIRE(navg[1] > navg[40]);
  REQUIRE(eff[40] > eff[39]);

  trainer::Trainer first(tiny(ds, (dir / "b").string(), 40, sp), false);
  auto rb1 = first.run(/*stop_after=*/stop);
  trainer::Trainer second(tiny(ds, (dir / "b").string(), 40, sp), true);
  auto rb2 = second.run();
  REQUIRE(rb2.losses.size() == 40 - stop);
  for (int64_t i = 0; i < stop; ++i) REQUIRE(rb1.losses[i] == ra.losses[i]);
  for (int64_t i = 0; i < 40 - stop; ++i) REQUIRE(rb2.losses[i] == ra.losses[stop + i]);
  auto pa = straight.model().named_parameters(), pb = second.model().named_parameters();
  for (const auto& kv : pa) REQUIRE(at::equal(kv.value(), pb[kv.key()]));
  auto sb = metric(dir / "b", "n_avg");
  REQUIRE(sb[40] == navg[40]);  // accumulators resumed exactly
  REQUIRE(metric(dir / "b", "eff_flops")[40] == eff[40]);

  // Exact zero counts in the final weights; prunable set in run metadata; dense parts untouched.
  auto ck = checkpoint::load_checkpoint(dir / "b" / "checkpoints" / "step_40");
  REQUIRE_THAT(ck.meta.at("sparsity.prunable"), Contains("blocks.0.attn.wq.weight") && Contains("blocks.1.mlp.w2.weight"));
  REQUIRE(ck.meta.at("sparsity.prunable").find("emb") == std::string::npos);
  REQUIRE(fs::exists(dir / "b" / "sparsity_prunable.txt"));
  for (const auto& kv : pb) {
    const auto& n = kv.key();
    if (ck.tensors.count("sparsity.mask." + n)) {
      REQUIRE(zeros_of(kv.value()) >= std::llround(0.5 * kv.value().numel()));
      REQUIRE(zeros_of(ck.tensors.at("sparsity.mask." + n)) == std::llround(0.5 * kv.value().numel()));
      REQUIRE(zeros_of(ck.tensors.at("optim.adamw.v." + n)) >= std::llround(0.5 * kv.value().numel()));
    } else {
      const bool dense_kind = n.find("blocks") == std::string::npos || n.find("norm") != std::string::npos || n.find("bias") != std::string::npos;
      REQUIRE(dense_kind);
    }
  }
  REQUIRE(ck.tensors.count("sparsity.mask.blocks.0.mlp.w1.weight"));
  REQUIRE_FALSE(ck.tensors.count("sparsity.mask.tok_emb.weight"));
}

TEST_CASE("SPDF with Sophia: static masks, then a dense phase with a fresh optimizer; resume across both", "[sparsity][trainer]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  const std::string sp = "sparsity: {method: static, sparsity: 0.75, dense_from_step: 12}\n"
                         "optim: {name: sophia, lr: 0.001, betas: [0.965, 0.99], hessian_interval: 5}\n";
  trainer::Trainer straight(tiny(ds, (dir / "a").string(), 20, sp), false);
  auto ra = straight.run();
  auto s = metric(dir / "a", "sparsity");
  for (int64_t i = 1; i <= 12; ++i) REQUIRE(s[i] == Approx(0.75).margin(1e-4));
  for (int64_t i = 13; i <= 20; ++i) REQUIRE(s[i] == 0.0);
  auto w = straight.model().named_parameters()["blocks.0.mlp.w1.weight"];
  REQUIRE(zeros_of(w) < w.numel() / 100);  // the masked entries learned in the dense phase

  for (int64_t stop : {8, 15}) {  // before and after the switch
    const auto run = dir / ("b" + std::to_string(stop));
    trainer::Trainer first(tiny(ds, run.string(), 20, sp), false);
    first.run(stop);
    if (stop == 8) {
      auto ck = checkpoint::load_checkpoint(run / "checkpoints" / "step_8");
      const auto& wk = ck.tensors.at("model.blocks.1.attn.wk.weight");
      REQUIRE(zeros_of(wk) == std::llround(0.75 * wk.numel()));
      REQUIRE(zeros_of(ck.tensors.at("optim.sophia.hc.blocks.1.attn.wk.weight")) >= std::llround(0.75 * wk.numel()));
    }
    trainer::Trainer second(tiny(ds, run.string(), 20, sp), true);
    auto rb = second.run();
    REQUIRE(rb.losses.size() == static_cast<size_t>(20 - stop));
    for (int64_t i = 0; i < 20 - stop; ++i) REQUIRE(rb.losses[i] == ra.losses[stop + i]);
    auto pa = straight.model().named_parameters(), pb = second.model().named_parameters();
    for (const auto& kv : pa) REQUIRE(at::equal(kv.value(), pb[kv.key()]));
  }
}

TEST_CASE("SPDF under parallel.zero1: the dense phase restarts the inner optimizer; equals zero1 off", "[sparsity][trainer][zero1]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  const std::string sp = "sparsity: {method: static, sparsity: 0.75, dense_from_step: 6}\n";
  trainer::Trainer plain(tiny(ds, (dir / "a").string(), 10, sp), false);
  auto ra = plain.run();
  trainer::Trainer zero(tiny(ds, (dir / "z").string(), 10, sp + "parallel: {zero1: true}\n"), false);
  auto rz = zero.run();
  REQUIRE(rz.losses.size() == 10);
  for (size_t i = 0; i < 10; ++i) REQUIRE(rz.losses[i] == Approx(ra.losses[i]).epsilon(1e-6));
  auto s = metric(dir / "z", "sparsity");
  REQUIRE(s[6] == Approx(0.75).margin(1e-4));
  REQUIRE(s[7] == 0.0);
  auto pa = plain.model().named_parameters(), pz = zero.model().named_parameters();
  for (const auto& kv : pa) REQUIRE(at::allclose(kv.value(), pz[kv.key()], 1e-5, 1e-6));
}

TEST_CASE("sparsity refuses what it does not support, naming the keys", "[sparsity][trainer]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  REQUIRE_THROWS_WITH(tiny(ds, (dir / "y").string(), 2, "sparsity: {method: magic}\n"), Contains("sparsity.method"));
}
