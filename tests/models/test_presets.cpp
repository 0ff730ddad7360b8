// The model presets in recipes/presets: parameter counts against specs/models.md, and the tiny
// CPU variants training for a few steps through the real trainer (activation checkpointing on).
#include <filesystem>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "data/prep.hpp"
#include "models/flops.hpp"
#include "models/language_model.hpp"
#include "tests/models/tiny_configs.hpp"
#include "tests/support/corpus.hpp"
#include "tests/support/temp_dir.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {
std::string preset(const std::string& name) {
  const char* src = std::getenv("STRATA_SOURCE_DIR");
  return (fs::path(src ? src : ".") / "recipes" / "presets" / (name + ".yaml")).string();
}
models::ModelConfig model_of(const std::string& name) {
  return trainer::load_recipe(preset(name), {"train.seq_len=1"}).model;
}
}  // namespace

TEST_CASE("Preset parameter counts equal the spec's table", "[models][presets]") {
  REQUIRE(models::param_count(model_of("gpt2-124m")) == 124439808);
  REQUIRE(models::param_count(model_of("gpt2-350m")) == 354823168);
  REQUIRE(models::param_count(model_of("gpt2-774m")) == 774030080);
  REQUIRE(models::param_count(model_of("gpt2-1.5b")) == 1557611200);
  REQUIRE(models::param_count(model_of("llama-7b")) == 6738415616);
  REQUIRE(models::param_count(model_of("llama-8b")) == 8030261248);
  REQUIRE(models::param_count(model_of("llama-1b")) == 1100048384);
  REQUIRE(models::param_count(model_of("llama-110m")) == 109529856);
  for (const char* name : {"bert-base", "bert-large"}) {
    auto c = model_of(name);
    const int64_t bert_model = models::param_count(c) - models::bert_mlm_head_params(c) + models::bert_pooler_params(c);
    REQUIRE(bert_model == (std::string(name) == "bert-base" ? 109482240 : 335141888));
  }
  REQUIRE(models::flops_per_token(model_of("gpt2-124m"), 1024) == Approx(855166464.0).epsilon(1e-12));
  // The tiny presets build models whose size is the formula's.
  for (const char* name : {"gpt2-tiny", "llama-tiny", "bert-tiny"}) {
    INFO(name);
    auto c = model_of(name);
    REQUIRE(testing::numel(*models::make_model(c)) == models::param_count(c));
  }
}

TEST_CASE("Tiny GPT-2 and Llama presets train for a few steps (activation checkpointing on)", "[models][presets][e2e]") {
  testing::TempDir dir;
  testing::write_text((dir / "corpus.txt").string(), testing::synthetic_corpus(200));
  data::PrepOptions opt;
  opt.inputs = {(dir / "corpus.txt").string()};
  opt.out = (dir / "ds").string();
  data::prep_dataset(opt);
  for (const std::string name : {"gpt2-tiny", "llama-tiny"}) {
    INFO(name);
    auto cfg = trainer::load_recipe(preset(name), {"data.path=" + opt.out, "run.dir=" + (dir / name).string(), "train.steps=8",
                                                   "train.micro_batch=4", "train.seq_len=32", "train.threads=2",
                                                   "train.eval_every=0", "train.eval_batches=1", "train.log_every=4",
                                                   "optim.lr=0.01", "schedule.warmup_steps=2",
                                                   "train.activation_checkpointing=true"});
    trainer::Trainer t(cfg, false);
    auto r = t.run();
    REQUIRE(r.losses.size() == 8);
    REQUIRE(r.losses.back() < r.losses.front() - 1.0);
  }
}
