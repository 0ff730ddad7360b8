// Growth inside a run and offline (`strata grow` path): the grown tiny model keeps training.
#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <catch2/catch.hpp>

#include "checkpoint/checkpoint.hpp"
#include "data/prep.hpp"
#include "growth/apply.hpp"
#include "tests/support/corpus.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_dataset.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {

trainer::RunConfig recipe(const std::string& model, const std::string& extra, std::vector<std::string> sets) {
  return trainer::load_recipe_text("model: " + model + R"(
train: {micro_batch: 4, grad_accum: 1, seq_len: 32, log_every: 100, eval_every: 0, eval_batches: 1, threads: 2}
optim: {lr: 0.003, weight_decay: 0.0}
schedule: {warmup_steps: 2, name: constant}
)" + extra,
                                   "growth.yaml", sets);
}

double mean(const std::vector<double>& v, size_t b, size_t e) {
  double s = 0;
  for (size_t i = b; i < e; ++i) s += v[i];
  return s / static_cast<double>(e - b);
}

}  // namespace

TEST_CASE("an in-run g_stack growth event grows the model and training continues", "[growth][e2e]") {
  at::set_num_threads(2);
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  // 4 x 32 tokens per step: growth at 1280 tokens = step 10 of 24.
  auto cfg = recipe("{n_layer: 4, d_model: 32, n_head: 2, vocab_size: 262, max_seq_len: 32}",
                    "growth: {operator: g_stack, factor: 2, at_tokens: '1280', rewarm_steps: 2}\n",
                    {"data.path=" + ds, "run.dir=" + (dir / "run").string(), "train.steps=24", "checkpoint.every=10", "checkpoint.keep=5"});
  trainer::Trainer t(cfg, false);
  REQUIRE(t.model().config().n_layer == 2);
  auto r = t.run();
  REQUIRE(t.model().config().n_layer == 4);
  REQUIRE(r.losses.size() == 24);
  REQUIRE(mean(r.losses, 20, 24) < mean(r.losses, 10, 14));  // the grown model keeps learning
  REQUIRE(mean(r.losses, 20, 24) < r.losses.front() - 1.0);
  auto st10 = checkpoint::load_checkpoint(dir / "run" / "checkpoints" / "step_10");
  REQUIRE(st10.meta.at("growth.stage") == "source");
  REQUIRE(st10.tensors.count("model.blocks.2.attn.wq.weight") == 0);
  auto st24 = checkpoint::load_checkpoint(dir / "run" / "checkpoints" / "step_24");
  REQUIRE(st24.meta.at("growth.stage") == "target");
  REQUIRE(st24.meta.at("growth.layers") == "0,1,0,1");
  REQUIRE(st24.tensors.count("model.blocks.3.attn.wq.weight") == 1);
  // Resuming after the growth rebuilds the large model.
  trainer::Trainer again(cfg, true);
  REQUIRE(again.model().config().n_layer == 4);
}

TEST_CASE("offline bert2bert growth writes a step-0 checkpoint the target run resumes and trains", "[growth][e2e]") {
  at::set_num_threads(2);
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  const std::string small_model = "{arch: llama, n_layer: 2, d_model: 32, n_head: 2, d_ff: 64, vocab_size: 262, max_seq_len: 32, "
                                  "bias: false, tie_embeddings: false}";
  auto small = recipe(small_model, "", {"data.path=" + ds, "run.dir=" + (dir / "small").string(), "train.steps=20"});
  trainer::Trainer ts(small, false);
  auto rs = ts.run();
  auto src = checkpoint::load_checkpoint(dir / "small" / "checkpoints" / "step_20");

  auto target = recipe("{arch: llama, n_layer: 2, d_model: 64, n_head: 4, d_ff: 128, vocab_size: 262, max_seq_len: 32, "
                       "bias: false, tie_embeddings: false}",
                       "growth: {operator: bert2bert, factor: 2}\n",
                       {"data.path=" + ds, "run.dir=" + (dir / "big").string(), "train.steps=16"});
  auto grown = growth::grow_checkpoint(src, small.model, target.model, target.growth, trainer::dump_recipe(target));
  REQUIRE(grown.step == 0);
  REQUIRE(grown.meta.at("growth.map.hidden").rfind("0,1,2", 0) == 0);
  REQUIRE(grown.meta.at("growth.source_step") == "20");
  checkpoint::save_checkpoint(dir / "big" / "checkpoints", grown);

  trainer::Trainer tb(target, true);
  REQUIRE(tb.model().config().d_model == 64);
  const double first_val = tb.evaluate();
  trainer::Trainer ts_eval(small, true);  // FPI: the grown model scores the small model's val loss
  REQUIRE(std::abs(first_val - ts_eval.evaluate()) < 1e-4);
  auto rb = tb.run();
  REQUIRE(rb.losses.size() == 16);
  REQUIRE(mean(rb.losses, 12, 16) < mean(rb.losses, 0, 4));  // the grown model keeps learning
  REQUIRE(mean(rb.losses, 12, 16) < rs.losses.front() - 1.0);
}
