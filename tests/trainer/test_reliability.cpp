// Reliability of the training loop: non-finite steps (skip, rollback, fail, limit), preemption
// (a SIGTERM finishes the step, checkpoints and stops; resume is exact) and a full disk during a
// checkpoint (clear error, the previous checkpoint stays loadable). Faults come from the test hooks
// in trainer/step_guard.hpp and core/fs.cpp, set through the environment.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

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

trainer::RunConfig tiny(const std::string& data, const std::string& run_dir, int64_t steps,
                        const std::vector<std::string>& extra = {}) {
  std::vector<std::string> o = {"data.path=" + data, "run.dir=" + run_dir, "train.steps=" + std::to_string(steps)};
  o.insert(o.end(), extra.begin(), extra.end());
  return trainer::load_recipe_text(R"(
model: {n_layer: 1, d_model: 32, n_head: 2, vocab_size: 262, max_seq_len: 32}
train: {micro_batch: 4, grad_accum: 1, seq_len: 32, log_every: 100, eval_every: 0, eval_batches: 1, threads: 2}
optim: {lr: 0.003}
schedule: {warmup_steps: 2}
)",
                                   "reliability.yaml", o);
}

// Sets an environment variable for one scope.
struct ScopedEnv {
  std::string name;
  ScopedEnv(std::string n, const std::string& v) : name(std::move(n)) { ::setenv(name.c_str(), v.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

void require_same_weights(trainer::Trainer& a, trainer::Trainer& b) {
  auto pa = a.model().named_parameters(), pb = b.model().named_parameters();
  for (const auto& kv : pa) REQUIRE(at::equal(kv.value(), pb[kv.key()]));
}

}  // namespace

TEST_CASE("a NaN step is skipped by every policy but fail, and rollback equals skip bitwise", "[trainer][reliability]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir, 120);
  trainer::Trainer clean(tiny(ds, (dir / "clean").string(), 10), false);
  auto rc = clean.run();

  ScopedEnv nan("STRATA_FAULT_NAN_AT", "6");
  trainer::Trainer skip(tiny(ds, (dir / "skip").string(), 10), false);
  auto rs = skip.run();
  REQUIRE(rs.steps_done == 10);
  REQUIRE(std::isnan(rs.losses[5]));
  for (int i = 0; i < 5; ++i) REQUIRE(rs.losses[i] == rc.losses[i]);  // identical until the fault
  REQUIRE(rs.losses[9] != rc.losses[9]);                               // one update fewer
  for (const auto& kv : skip.model().named_parameters()) REQUIRE(at::isfinite(kv.value()).all().item<bool>());
  std::ifstream m(dir / "skip" / "metrics.jsonl");
  std::string all((std::istreambuf_iterator<char>(m)), std::istreambuf_iterator<char>());
  REQUIRE_THAT(all, Contains("\"skipped_nonfinite\""));

  // Rollback to the step-4 checkpoint, recompute step 5, skip step 6's batch: the same weights.
  trainer::Trainer rollback(tiny(ds, (dir / "rb").string(), 10, {"train.on_nonfinite=rollback", "checkpoint.every=4"}), false);
  auto rr = rollback.run();
  REQUIRE(rr.steps_done == 10);
  REQUIRE(rr.losses.size() == 10);
  REQUIRE(std::isnan(rr.losses[5]));
  require_same_weights(rollback, skip);
  // The skipped step is in checkpoint meta, so a resume from step 8 skips nothing it should not.
  auto ck = checkpoint::load_checkpoint(dir / "rb" / "checkpoints" / "step_8");
  REQUIRE(ck.meta.at("nonfinite.skipped") == "6");

  REQUIRE_THROWS_WITH(trainer::Trainer(tiny(ds, (dir / "f").string(), 10, {"train.on_nonfinite=fail"}), false).run(),
                      Contains("step 6") && Contains("train.on_nonfinite = fail"));
  REQUIRE_THROWS_WITH(trainer::Trainer(tiny(ds, (dir / "l").string(), 10, {"train.nonfinite_limit=0"}), false).run(),
                      Contains("train.nonfinite_limit = 0"));
}

TEST_CASE("SIGTERM: the step finishes, a checkpoint is written, and resume is exact", "[trainer][reliability]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir, 120);
  trainer::Trainer straight(tiny(ds, (dir / "a").string(), 10), false);
  auto ra = straight.run();
  {
    ScopedEnv term("STRATA_FAULT_SIGTERM_AT", "4");
    trainer::Trainer first(tiny(ds, (dir / "b").string(), 10), false);
    auto r1 = first.run();
    REQUIRE(r1.preempted);
    REQUIRE(r1.steps_done == 4);
    REQUIRE(fs::exists(dir / "b" / "checkpoints" / "step_4" / "manifest.pb"));
  }
  trainer::Trainer second(tiny(ds, (dir / "b").string(), 10), true);
  auto r2 = second.run();
  REQUIRE(r2.losses.size() == 6);
  for (int i = 0; i < 6; ++i) REQUIRE(r2.losses[i] == ra.losses[4 + i]);
  require_same_weights(second, straight);
}

TEST_CASE("a full disk during a checkpoint: clear error, nothing partial, the previous checkpoint loads",
          "[trainer][reliability][checkpoint]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir, 120);
  ScopedEnv full("STRATA_FAULT_ENOSPC", "step_6");
  trainer::Trainer t(tiny(ds, (dir / "r").string(), 6, {"checkpoint.every=3"}), false);
  REQUIRE_THROWS_WITH(t.run(), Contains("checkpoint at step 6") && Contains("No space left on device") &&
                                   Contains("step_3") && Contains("intact"));
  const auto root = dir / "r" / "checkpoints";
  REQUIRE(checkpoint::latest_checkpoint(root) == root / "step_3");
  for (const auto& e : fs::directory_iterator(root)) REQUIRE(e.path().filename().string().rfind(".tmp", 0) != 0);
  REQUIRE(checkpoint::load_checkpoint(root / "step_3").step == 3);
  // And the run resumes from it once the disk has room again.
  ::unsetenv("STRATA_FAULT_ENOSPC");
  trainer::Trainer again(tiny(ds, (dir / "r").string(), 6, {"checkpoint.every=3"}), true);
  REQUIRE(again.run().steps_done == 6);
}
