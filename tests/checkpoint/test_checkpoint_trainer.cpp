// Disk checkpoints through the trainer: asynchronous saving leaves losses and checkpoint contents
// unchanged; ZeRO-1 writes its optimizer shards in the sliced format and resumes with zero1 on or off.
#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <catch2/catch.hpp>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/inspect.hpp"
#include "checkpoint/sliced.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_dataset.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {

trainer::RunConfig tiny(const std::string& data, const fs::path& run_dir, std::vector<std::string> sets) {
  sets.push_back("data.path=" + data);
  sets.push_back("run.dir=" + run_dir.string());
  return trainer::load_recipe_text(R"(
model: {n_layer: 1, d_model: 32, n_head: 2, vocab_size: 262, max_seq_len: 32}
train: {steps: 12, micro_batch: 2, grad_accum: 2, seq_len: 32, log_every: 4, eval_every: 0, eval_batches: 1, threads: 1}
optim: {lr: 0.003, weight_decay: 0.1}
schedule: {warmup_steps: 2}
checkpoint: {every: 4, keep: 5}
)",
                                   "tiny.yaml", sets);
}

void require_same_checkpoints(const fs::path& a, const fs::path& b, const std::vector<int>& steps) {
  for (int s : steps) {
    auto ca = checkpoint::load_checkpoint(a / "checkpoints" / fmt::format("step_{}", s));
    auto cb = checkpoint::load_checkpoint(b / "checkpoints" / fmt::format("step_{}", s));
    REQUIRE(ca.tensors.size() == cb.tensors.size());
    for (const auto& [k, t] : ca.tensors) {
      INFO("step " << s << " tensor " << k);
      REQUIRE(at::equal(t, cb.tensors.at(k)));
    }
    REQUIRE(ca.meta == cb.meta);
  }
}

}  // namespace

TEST_CASE("asynchronous checkpoints: identical losses and identical checkpoint contents", "[checkpoint][async][trainer]") {
  at::set_num_threads(1);
  testing::TempDir dir;
  const auto ds = testing::prepare_tiny_dataset(dir, 60);
  trainer::Trainer sync_run(tiny(ds, dir / "sync", {"checkpoint.async=false"}), false);
  auto rs = sync_run.run();
  trainer::Trainer async_run(tiny(ds, dir / "async", {"checkpoint.async=true"}), false);
  auto ra = async_run.run();
  REQUIRE(ra.losses.size() == 12);
  REQUIRE(ra.losses == rs.losses);  // bitwise
  require_same_checkpoints(dir / "sync", dir / "async", {4, 8, 12});
  // Resuming an asynchronously written checkpoint continues the same curve.
  fs::remove_all(dir / "async" / "checkpoints" / "step_12");
  trainer::Trainer resumed(tiny(ds, dir / "async", {"checkpoint.async=true"}), true);
  auto rr = resumed.run();
  REQUIRE(rr.losses.size() == 4);
  for (int i = 0; i < 4; ++i) REQUIRE(rr.losses[i] == rs.losses[8 + i]);
}

TEST_CASE("ZeRO-1 writes sliced optimizer shards; resume with zero1 on or off continues the same run",
          "[checkpoint][sliced][trainer]") {
  at::set_num_threads(1);
  testing::TempDir dir;
  const auto ds = testing::prepare_tiny_dataset(dir, 60);
  trainer::Trainer plain(tiny(ds, dir / "plain", {}), false);
  auto rp = plain.run();
  trainer::Trainer z(tiny(ds, dir / "z", {"parallel.zero1=true", "parallel.bucket_mb=0.01", "checkpoint.async=true"}), false);
  auto rz = z.run();
  for (int i = 0; i < 12; ++i) REQUIRE(rz.losses[i] == Approx(rp.losses[i]).epsilon(1e-6));
  const auto ck = dir / "z" / "checkpoints" / "step_8";
  checkpoint::CheckpointReader r(ck);
  REQUIRE(r.version() == 2);
  bool flat_optim = false;
  for (const auto& [name, t] : r.tensors())
    if (name.rfind("optim.adamw.m.", 0) == 0) flat_optim = flat_optim || (!t.slices.empty() && t.slices[0].region.flat);
  REQUIRE(flat_optim);
  REQUIRE(checkpoint::verify_checkpoint(ck).problems.empty());
  for (bool zero1 : {false, true}) {
    const auto run = dir / (zero1 ? "rz" : "rp");
    fs::create_directories(run / "checkpoints");
    fs::copy(ck, run / "checkpoints" / "step_8", fs::copy_options::recursive);
    trainer::Trainer t(tiny(ds, run, {fmt::format("parallel.zero1={}", zero1), "parallel.bucket_mb=0.02"}), true);
    auto res = t.run();
    REQUIRE(res.losses.size() == 4);
    for (int i = 0; i < 4; ++i) REQUIRE(res.losses[i] == Approx(rz.losses[8 + i]).epsilon(1e-6));
  }
}
