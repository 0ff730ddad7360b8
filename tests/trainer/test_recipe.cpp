#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "tests/support/temp_dir.hpp"
#include "trainer/recipe.hpp"

#include <fstream>

using namespace strata::trainer;
using Catch::Matchers::Contains;

namespace {
const char* kGood = R"(run:
  name: t
  seed: 7
model:
  n_layer: 2
  d_model: 64
  n_head: 4
train:
  steps: 30
  seq_len: 32
optim:
  lr: 0.003
  betas: [0.9, 0.99]
)";
}

TEST_CASE("a good recipe binds every key and keeps defaults", "[trainer][recipe]") {
  auto c = load_recipe_text(kGood, "good.yaml");
  REQUIRE(c.run.name == "t");
  REQUIRE(c.run.seed == 7);
  REQUIRE(c.model.n_layer == 2);
  REQUIRE(c.model.d_model == 64);
  REQUIRE(c.train.steps == 30);
  REQUIRE(c.optim.lr == 0.003);
  REQUIRE(c.optim.betas == std::vector<double>{0.9, 0.99});
  REQUIRE(c.optim.eps == 1e-8);  // default
  // The dump re-loads to the same config.
  auto again = load_recipe_text(dump_recipe(c), "dump.yaml");
  REQUIRE(dump_recipe(again) == dump_recipe(c));
}

TEST_CASE("unknown key: file, line, and the nearest valid key", "[trainer][recipe]") {
  REQUIRE_THROWS_WITH(load_recipe_text("model:\n  n_layer: 2\n  n_layr: 3\n", "r.yaml"),
                      Contains("r.yaml:3") && Contains("unknown key 'model.n_layr'") && Contains("did you mean 'model.n_layer'"));
  REQUIRE_THROWS_WITH(load_recipe_text("trian:\n  steps: 3\n", "r.yaml"),
                      Contains("r.yaml:1") && Contains("'trian'") && Contains("did you mean 'train'"));
  // A key in the wrong section points at the right one.
  REQUIRE_THROWS_WITH(load_recipe_text("model:\n  steps: 3\n", "r.yaml"), Contains("did you mean 'train.steps'"));
}

TEST_CASE("wrong type and out-of-range values name the key and line", "[trainer][recipe]") {
  REQUIRE_THROWS_WITH(load_recipe_text("train:\n  steps: many\n", "r.yaml"),
                      Contains("r.yaml:2") && Contains("train.steps") && Contains("integer") && Contains("many"));
  REQUIRE_THROWS_WITH(load_recipe_text("optim:\n  lr: -1\n", "r.yaml"),
                      Contains("r.yaml:2") && Contains("optim.lr") && Contains("out of range"));
  REQUIRE_THROWS_WITH(load_recipe_text("model:\n  arch: rnn\n", "r.yaml"),
                      Contains("model.arch") && Contains("gpt, llama, bert"));
  REQUIRE_THROWS_WITH(load_recipe_text("optim:\n  betas: [0.9]\n", "r.yaml"), Contains("optim.betas") && Contains("2 numbers"));
  REQUIRE_THROWS_WITH(load_recipe_text("model:\n  d_model: 30\n  n_head: 4\n", "r.yaml"),
                      Contains("r.yaml:3") && Contains("divisible"));
  REQUIRE_THROWS_WITH(load_recipe_text("model: [1, 2]\n", "r.yaml"), Contains("'model' is a section"));
}

TEST_CASE("--set overrides and include of a base recipe", "[trainer][recipe]") {
  strata::testing::TempDir dir;
  std::ofstream(dir / "base.yaml") << kGood;
  std::ofstream(dir / "child.yaml") << "include: base.yaml\ntrain:\n  steps: 99\n";
  auto c = load_recipe((dir / "child.yaml").string(), {"run.dir=runs/x", "optim.betas=[0.8, 0.9]"});
  REQUIRE(c.train.steps == 99);         // child wins over base
  REQUIRE(c.model.n_layer == 2);        // from base
  REQUIRE(c.run.dir == "runs/x");       // from --set
  REQUIRE(c.optim.betas[0] == 0.8);
  REQUIRE_THROWS_WITH(load_recipe((dir / "child.yaml").string(), {"train.stepz=3"}),
                      Contains("--set train.stepz") && Contains("did you mean 'train.steps'"));
  REQUIRE_THROWS_WITH(load_recipe((dir / "child.yaml").string(), {"train.steps=abc"}),
                      Contains("--set train.steps") && Contains("integer"));
  std::ofstream(dir / "bad.yaml") << "include: base.yaml\nmodel:\n  d_model: 64\n  dropout: 2\n";
  REQUIRE_THROWS_WITH(load_recipe((dir / "bad.yaml").string()), Contains("bad.yaml:4") && Contains("model.dropout"));
  std::ofstream(dir / "cyc.yaml") << "include: cyc.yaml\n";
  REQUIRE_THROWS_WITH(load_recipe((dir / "cyc.yaml").string()), Contains("include cycle"));
}
