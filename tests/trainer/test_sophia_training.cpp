// Sophia in the training loop: the Hessian-refresh cadence and its metrics, bitwise resume with
// Sophia state and the refresh generator, Sophia-H through the model (double backward), the
// linear_only decay rule on GPT, re-warming on resume, and Sophia under parallel.zero1 (same run,
// sliced checkpoints, exact resume; dp = 2 is tests/parallel/mp_sophia.sh).
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "checkpoint/sliced.hpp"
#include "data/prep.hpp"
#include "tests/support/corpus.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_dataset.hpp"
#include "trainer/pipeline_train.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {

trainer::RunConfig sophia(const std::string& data, const std::string& run_dir, int64_t steps,
                          std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {"data.path=" + data, "run.dir=" + run_dir, "train.steps=" + std::to_string(steps)};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return trainer::load_recipe_text(R"(
model: {n_layer: 2, d_model: 64, n_head: 4, vocab_size: 262, max_seq_len: 64}
train: {micro_batch: 4, grad_accum: 2, seq_len: 32, log_every: 10, eval_every: 0, eval_batches: 2, threads: 2}
optim: {name: sophia, lr: 0.003, betas: [0.965, 0.99], rho: 0.05, weight_decay: 0.2, hessian_interval: 3,
        decay_rule: linear_only}
schedule: {warmup_steps: 5}
)",
                                   "tiny-sophia.yaml", sets);
}

// metrics.jsonl rows as key -> value maps.
std::vector<std::map<std::string, double>> read_metrics(const fs::path& path) {
  std::vector<std::map<std::string, double>> rows;
  std::ifstream in(path);
  std::string line;
  const std::regex field("\"([a-z_]+)\": ([-0-9.e+]+)");
  while (std::getline(in, line)) {
    std::map<std::string, double> row;
    for (std::sregex_iterator it(line.begin(), line.end(), field), end; it != end; ++it)
      row[(*it)[1]] = std::stod((*it)[2]);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

TEST_CASE("Sophia-G trains, refreshes every k steps and logs win_rate and hessian_norm", "[trainer][sophia]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  trainer::Trainer t(sophia(ds, (dir / "run").string(), 20), false);
  auto r = t.run();
  REQUIRE(r.losses.back() < r.losses.front() - 1.0);
  auto rows = read_metrics(dir / "run" / "metrics.jsonl");
  REQUIRE(rows.size() == 20);
  int refreshes = 0;
  for (const auto& row : rows) {
    const auto step = static_cast<int64_t>(row.at("step"));  // 1-indexed: refresh after 0-indexed step % 3 == 2
    const bool due = (step - 1) % 3 == 2;
    REQUIRE(row.count("win_rate") == (due ? 1u : 0u));
    if (!due) continue;
    ++refreshes;
    REQUIRE(row.at("win_rate") >= 0.0);
    REQUIRE(row.at("win_rate") <= 1.0);
    REQUIRE(row.at("hessian_norm") > 0.0);
    REQUIRE(row.at("hessian_loss") > 0.0);
  }
  REQUIRE(refreshes == 20 / 3);
}

TEST_CASE("Sophia resume: 20 straight steps equal 10 + resume + 10, bitwise", "[trainer][sophia][resume]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  trainer::Trainer straight(sophia(ds, (dir / "a").string(), 20), false);
  auto ra = straight.run();
  trainer::Trainer first(sophia(ds, (dir / "b").string(), 20), false);
  auto rb1 = first.run(/*stop_after=*/10);
  trainer::Trainer second(sophia(ds, (dir / "b").string(), 20), true);
  auto rb2 = second.run();
  REQUIRE(rb2.losses.size() == 10);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(rb1.losses[i] == ra.losses[i]);
    REQUIRE(rb2.losses[i] == ra.losses[10 + i]);
  }
  auto pa = straight.model().named_parameters(), pb = second.model().named_parameters();
  for (const auto& kv : pa) REQUIRE(at::equal(kv.value(), pb[kv.key()]));
  auto ma = read_metrics(dir / "a" / "metrics.jsonl"), mb = read_metrics(dir / "b" / "metrics.jsonl");
  REQUIRE(ma.size() == mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    for (auto* timing : {"tokens_per_s", "gflops"}) ma[i].erase(timing), mb[i].erase(timing);
    REQUIRE(ma[i] == mb[i]);  // loss, lr, grad_norm, win_rate, hessian_norm, hessian_loss
  }
}

TEST_CASE("Sophia-H refreshes through the model by double backward", "[trainer][sophia][hutchinson]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  trainer::Trainer t(sophia(ds, (dir / "h").string(), 6,
                            {"optim.hessian_estimator=hutchinson", "optim.rho=0.01", "optim.hessian_interval=2"}),
                     false);
  auto r = t.run();
  REQUIRE(std::isfinite(r.losses.back()));
  auto rows = read_metrics(dir / "h" / "metrics.jsonl");
  REQUIRE(rows[1].count("win_rate") == 1);
  REQUIRE(rows[1].at("hessian_norm") > 0.0);
  REQUIRE(rows[2].count("win_rate") == 0);
}

TEST_CASE("pipeline: Sophia-G runs through the schedule, Sophia-H is refused naming the key", "[trainer][sophia][pp]") {
  auto cfg = sophia("unused", "unused", 4, {"parallel.pp=2"});
  REQUIRE_NOTHROW(trainer::check_pipeline_supported(cfg));
  cfg.optim.hessian_estimator = "hutchinson";
  REQUIRE_THROWS_WITH(trainer::check_pipeline_supported(cfg), Catch::Contains("optim.hessian_estimator = hutchinson"));
}

TEST_CASE("re-warming on resume with a new peak restarts the warmup at the resumed step", "[trainer][schedule]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  const auto run = (dir / "c").string();
  trainer::Trainer first(sophia(ds, run, 10, {"optim.name=adamw"}), false);
  first.run();
  // Continue to 16 steps with a new peak and a 4-step re-warm.
  trainer::Trainer second(sophia(ds, run, 16, {"optim.name=adamw", "optim.lr=0.01", "schedule.rewarm_steps=4"}), true);
  second.run(/*stop_after=*/13);
  auto rows = read_metrics(fs::path(run) / "metrics.jsonl");
  REQUIRE(rows.size() == 13);
  REQUIRE(rows[10].at("lr") == Approx(0.01 * 1 / 4));
  REQUIRE(rows[12].at("lr") == Approx(0.01 * 3 / 4));
  // A later resume keeps the re-warmed schedule (it does not restart again).
  trainer::Trainer third(sophia(ds, run, 16, {"optim.name=adamw", "optim.lr=0.01", "schedule.rewarm_steps=4"}), true);
  third.run();
  rows = read_metrics(fs::path(run) / "metrics.jsonl");
  REQUIRE(rows.size() == 16);
  REQUIRE(rows[13].at("lr") == Approx(0.01));
  REQUIRE(rows[15].at("lr") == Approx(0.001));  // cosine to min_lr_ratio 0.1 at the last step
}

TEST_CASE("Sophia with parallel.zero1 (one process): the same run, sliced checkpoints, exact resume",
          "[trainer][sophia][zero1]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  const std::vector<std::string> zero1 = {"parallel.zero1=true", "parallel.bucket_mb=0.01", "checkpoint.every=10"};
  trainer::Trainer plain(sophia(ds, (dir / "p").string(), 20), false);
  auto rp = plain.run();
  trainer::Trainer straight(sophia(ds, (dir / "z").string(), 20, zero1), false);
  auto rz = straight.run();
  REQUIRE(rz.losses.size() == 20);
  for (int i = 0; i < 20; ++i) REQUIRE(rz.losses[i] == Approx(rp.losses[i]).epsilon(1e-6));
  auto mp = read_metrics(dir / "p" / "metrics.jsonl"), mz = read_metrics(dir / "z" / "metrics.jsonl");
  REQUIRE(mz.size() == 20);
  int refreshes = 0;
  for (size_t i = 0; i < mz.size(); ++i) {
    REQUIRE(mz[i].count("hessian_norm") == mp[i].count("hessian_norm"));
    if (!mz[i].count("hessian_norm")) continue;
    ++refreshes;
    REQUIRE(mz[i].at("hessian_norm") == Approx(mp[i].at("hessian_norm")).epsilon(1e-5));
    REQUIRE(mz[i].at("hessian_loss") == Approx(mp[i].at("hessian_loss")).epsilon(1e-5));
    REQUIRE(std::abs(mz[i].at("win_rate") - mp[i].at("win_rate")) < 1e-4);
  }
  REQUIRE(refreshes == 20 / 3);
  // The ZeRO-1 checkpoint holds Sophia's m and hc as slices written by the dp rank(s).
  const auto ck = dir / "z" / "checkpoints" / "step_10";
  checkpoint::CheckpointReader reader(ck.string());
  int sliced_state = 0;
  for (const auto& [name, info] : reader.tensors())
    if (name.rfind("optim.sophia.m.", 0) == 0 || name.rfind("optim.sophia.hc.", 0) == 0) ++sliced_state;
  REQUIRE(sliced_state > 0);
  REQUIRE(reader.tensors().count("optim.sophia.refreshes") == 1);
  // 10 steps, resume from the sliced checkpoint (fresh Trainer), 10 more: bitwise the straight run.
  trainer::Trainer first(sophia(ds, (dir / "r").string(), 20, zero1), false);
  auto r1 = first.run(/*stop_after=*/10);
  trainer::Trainer second(sophia(ds, (dir / "r").string(), 20, zero1), true);
  auto r2 = second.run();
  REQUIRE(r2.losses.size() == 10);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(r1.losses[i] == rz.losses[i]);
    REQUIRE(r2.losses[i] == rz.losses[10 + i]);
  }
  auto pa = straight.model().named_parameters(), pb = second.model().named_parameters();
  for (const auto& kv : pa) REQUIRE(at::equal(kv.value(), pb[kv.key()]));
  auto ma = read_metrics(dir / "z" / "metrics.jsonl"), mb = read_metrics(dir / "r" / "metrics.jsonl");
  REQUIRE(ma.size() == mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    for (auto* timing : {"tokens_per_s", "gflops"}) ma[i].erase(timing), mb[i].erase(timing);
    REQUIRE(ma[i] == mb[i]);  // loss, lr, grad_norm, win_rate, hessian_norm, hessian_loss
  }
}
