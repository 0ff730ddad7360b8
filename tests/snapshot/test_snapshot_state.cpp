// Per-rank snapshot states through the trainer (trainer/snapshot_state.cpp, issue 13): under ZeRO-1
// (one process, dp = 1: the per-rank path without a launcher) capture_local_state holds the local
// parameters, the inner optimizer's own pieces and the run state; after serialize -> deserialize (what
// the SMP slot holds) a fresh trainer restores it and finishes the run bitwise like an uninterrupted
// one, with dropout and Sophia's curvature refresh (rng.cpu, rng.hessian). The layout tag of the
// state differs from a plain run's and is refused there, naming both layouts.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "snapshot/layout_tag.hpp"
#include "snapshot/serialize.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_dataset.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

using namespace strata;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

trainer::RunConfig tiny(const std::string& data, const fs::path& run_dir, const std::vector<std::string>& extra) {
  std::vector<std::string> o = {"data.path=" + data, "run.dir=" + run_dir.string()};
  o.insert(o.end(), extra.begin(), extra.end());
  return trainer::load_recipe_text(R"(
model: {n_layer: 1, d_model: 32, n_head: 2, vocab_size: 262, max_seq_len: 32, dropout: 0.1, bias: false}
train: {steps: 8, micro_batch: 4, grad_accum: 1, seq_len: 32, log_every: 100, eval_every: 0, eval_batches: 1, threads: 1}
optim: {lr: 0.003}
schedule: {warmup_steps: 2}
checkpoint: {every: 0}
)",
                                   "snapshot_state.yaml", o);
}

}  // namespace

TEST_CASE("a per-rank (ZeRO-1) snapshot state round-trips and the run continues bitwise", "[snapshot][trainer]") {
  at::set_num_threads(1);
  testing::TempDir dir;
  const auto ds = testing::prepare_tiny_dataset(dir, 60);
  const bool sophia = GENERATE(false, true);
  std::vector<std::string> opts = {"parallel.zero1=true", "parallel.bucket_mb=0.01"};
  if (sophia) opts.insert(opts.end(), {"optim.name=sophia", "optim.hessian_interval=2", "optim.rho=0.05"});
  INFO("sophia " << sophia);

  trainer::Trainer ref(tiny(ds, dir / "ref", opts), false);
  auto rr = ref.run();
  REQUIRE(rr.losses.size() == 8);

  trainer::Trainer a(tiny(ds, dir / "a", opts), false);
  a.run(/*stop_after=*/5);
  const auto st = a.capture_local_state(5);
  REQUIRE(a.snapshot_layout().per_rank());
  // The rank's own pieces: inner-optimizer moments as flat pieces, the parameters as held, the run state.
  int64_t model = 0, optim = 0;
  for (const auto& [k, t] : st.tensors) model += k.rfind("model.", 0) == 0, optim += k.rfind("optim.", 0) == 0;
  REQUIRE(model == static_cast<int64_t>(a.model().named_parameters().size()));
  REQUIRE(optim > model);  // moments (and Sophia's curvature) per parameter piece, plus counters
  REQUIRE(st.tensors.count("rng.cpu") == 1);
  REQUIRE(st.tensors.count("rng.hessian") == (sophia ? 1u : 0u));
  REQUIRE(st.meta.at("samples_consumed") == "20");
  for (const auto& [k, t] : st.tensors)
    if (k.rfind("optim.", 0) == 0 && t.dim() > 0 && t.numel() > 1) REQUIRE(t.dim() == 1);  // ZeRO-1 pieces are flat

  auto tagged = st;
  tagged.meta[snapshot::kLayoutMeta] = a.snapshot_layout().tag();
  const auto bytes = snapshot::serialize_state(tagged);
  const auto back = snapshot::deserialize_state(bytes.data(), bytes.size(), "test");
  REQUIRE(snapshot::layout_mismatch(back.meta, a.snapshot_layout(), "x").empty());

  trainer::Trainer b(tiny(ds, dir / "b", opts), false);
  b.restore_local_state(back, "test snapshot");
  auto rb = b.run();
  REQUIRE(rb.losses.size() == 3);
  for (int i = 0; i < 3; ++i) REQUIRE(rb.losses[i] == rr.losses[5 + i]);  // bitwise
  auto pr = ref.model().named_parameters(), pb = b.model().named_parameters();
  for (const auto& kv : pr) {
    INFO(kv.key());
    REQUIRE(at::equal(kv.value(), pb[kv.key()]));
  }

  // A plain (whole-state) run refuses the per-rank state, naming both layouts.
  std::vector<std::string> plain_opts = {"parallel.zero1=false"};
  if (sophia) plain_opts.insert(plain_opts.end(), {"optim.name=sophia", "optim.hessian_interval=2", "optim.rho=0.05"});
  trainer::Trainer plain(tiny(ds, dir / "plain", plain_opts), false);
  REQUIRE_FALSE(plain.snapshot_layout().per_rank());
  const auto why = snapshot::layout_mismatch(back.meta, plain.snapshot_layout(), "of step 5 on rank 0");
  REQUIRE_THAT(why, Contains("per-rank state of (tp 0, pp 0, dp 0) under tp=1 pp=1 dp=1 zero1=on") &&
                        Contains("whole state under tp=1 pp=1 dp=1 zero1=off"));
}
