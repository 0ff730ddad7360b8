// Reweighting inside the trainer: recipe keys, the uniform strategy training like the plain loss,
// metrics rows, exact resume, and the last pipeline stage's loss hook.
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "data/prep.hpp"
#include "models/language_model.hpp"
#include "parallel/process_group.hpp"
#include "reweighting/reweighter.hpp"
#include "tests/support/corpus.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_dataset.hpp"
#include "trainer/pipeline_stage.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

using namespace strata;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

trainer::RunConfig tiny(const std::string& data, const std::string& run_dir, int64_t steps,
                        std::vector<std::string> extra = {}) {
  extra.push_back("data.path=" + data);
  extra.push_back("run.dir=" + run_dir);
  extra.push_back("train.steps=" + std::to_string(steps));
  return trainer::load_recipe_text(R"(
model: {n_layer: 1, d_model: 32, n_head: 2, vocab_size: 262, max_seq_len: 32}
train: {micro_batch: 4, grad_accum: 2, seq_len: 16, log_every: 100, eval_every: 0, eval_batches: 1, threads: 2}
optim: {lr: 0.003}
schedule: {warmup_steps: 2}
)",
                                   "tiny.yaml", extra);
}

std::vector<std::string> metric_lines(const fs::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("recipe keys reach the config; an unknown strategy is refused naming the key", "[reweighting][trainer]") {
  testing::TempDir dir;
  auto cfg = tiny("unused", (dir / "r").string(), 1,
                  {"reweighting.strategy=linupper", "reweighting.r=0.5", "reweighting.burn_in_steps=7",
                   "reweighting.r_start=3", "reweighting.r_warmup_steps=4", "reweighting.token_weighted=true"});
  REQUIRE(cfg.reweighting.strategy == "linupper");
  REQUIRE(cfg.reweighting.r == 0.5);
  REQUIRE(cfg.reweighting.burn_in_steps == 7);
  REQUIRE(cfg.reweighting.r_start == 3.0);
  REQUIRE(cfg.reweighting.r_warmup_steps == 4);
  REQUIRE(cfg.reweighting.token_weighted);
  REQUIRE(tiny("unused", "r", 1).reweighting.strategy == "none");
  REQUIRE(trainer::dump_recipe(cfg).find("linupper") != std::string::npos);

  auto ds = testing::prepare_tiny_dataset(dir, 200);
  REQUIRE_THROWS_WITH(trainer::Trainer(tiny(ds, (dir / "bad").string(), 1, {"reweighting.strategy=linuper"}), false),
                      Contains("reweighting.strategy") && Contains("linuper") && Contains("linupper"));
}

TEST_CASE("uniform reweighting trains like the plain mean loss; linupper differs and logs its weights",
          "[reweighting][trainer]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir, 200);
  auto plain = trainer::Trainer(tiny(ds, (dir / "plain").string(), 4), false).run();
  auto uni = trainer::Trainer(
                 tiny(ds, (dir / "uni").string(), 4, {"reweighting.strategy=uniform", "reweighting.burn_in_steps=0"}), false)
                 .run();
  auto lin = trainer::Trainer(tiny(ds, (dir / "lin").string(), 4,
                                   {"reweighting.strategy=linupper", "reweighting.burn_in_steps=2", "reweighting.r=0.1"}),
                              false)
                 .run();
  REQUIRE(uni.losses.size() == 4);
  for (int i = 0; i < 4; ++i) REQUIRE(std::abs(uni.losses[i] - plain.losses[i]) < 1e-4);
  for (int i = 0; i < 3; ++i) REQUIRE(lin.losses[i] == Approx(plain.losses[i]).margin(1e-4));  // burn-in: steps 1-2
  REQUIRE(std::abs(lin.losses[3] - plain.losses[3]) > 1e-4);  // step 3 was the first weighted update

  auto rows = metric_lines(dir / "lin");
  REQUIRE(rows.size() == 4);
  REQUIRE(rows[1].find("reweight/") == std::string::npos);
  for (int i = 2; i < 4; ++i) {
    INFO(rows[i]);
    for (const char* k : {"\"reweight/entropy\"", "\"reweight/max_weight\"", "\"reweight/l_min\"", "\"reweight/l_max\""})
      REQUIRE(rows[i].find(k) != std::string::npos);
  }
}

TEST_CASE("reweighted runs resume exactly (the weights depend on the step only)", "[reweighting][trainer][resume]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir, 200);
  const std::vector<std::string> rw = {"reweighting.strategy=linupper", "reweighting.burn_in_steps=1",
                                       "reweighting.r=0.4", "reweighting.r_start=5", "reweighting.r_warmup_steps=3"};
  trainer::Trainer straight(tiny(ds, (dir / "a").string(), 6, rw), false);
  auto ra = straight.run();
  auto rb1 = trainer::Trainer(tiny(ds, (dir / "b").string(), 6, rw), false).run(/*stop_after=*/3);
  trainer::Trainer second(tiny(ds, (dir / "b").string(), 6, rw), true);
  auto rb2 = second.run();
  REQUIRE(rb2.losses.size() == 3);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(rb1.losses[i] == ra.losses[i]);
    REQUIRE(rb2.losses[i] == ra.losses[3 + i]);
  }
  auto pa = straight.model().named_parameters(), pb = second.model().named_parameters();
  for (const auto& kv : pa) REQUIRE(at::equal(kv.value(), pb[kv.key()]));
  REQUIRE(metric_lines(dir / "b").back().find("reweight/max_weight") != std::string::npos);
}

TEST_CASE("the last pipeline stage computes the reweighted loss through its loss hook", "[reweighting][pipeline]") {
  at::manual_seed(3);
  models::ModelConfig mc;
  mc.n_layer = 2, mc.d_model = 16, mc.n_head = 2, mc.vocab_size = 31, mc.max_seq_len = 8;
  auto model = models::make_model(mc);
  model->init_weights(3);
  data::Batch b;
  b.inputs = at::randint(0, 31, {3, 8}, at::kLong);
  b.targets = at::randint(0, 31, {3, 8}, at::kLong);
  reweighting::ReweightConfig rc;
  rc.strategy = "linupper";
  rc.burn_in_steps = 0;
  reweighting::Reweighter rw(rc, parallel::make_single_rank_group("dp"));
  auto want = rw.loss(model->forward(b.inputs), b.targets, 0).loss.item<double>();

  auto parts = trainer::pipeline_parts(*model, 2, "");
  trainer::ModelPipeStage stage(*model, parts, at::kCPU);
  stage.set_batches({b, b});  // two micro-batches: the loss is divided by 2
  auto plain = stage.forward(1, 0, stage.forward(0, 0, {})).item<double>();
  // The hook receives the last layer's output; it applies the head itself.
  stage.set_loss_fn(
      [&](const at::Tensor& x, const at::Tensor& targets) { return rw.loss(model->forward_head(x), targets, 0).loss; });
  auto got = stage.forward(1, 0, stage.forward(0, 0, {})).item<double>();
  REQUIRE(got == Approx(want / 2).epsilon(1e-6));
  REQUIRE(std::abs(got - plain) > 1e-5);
}
