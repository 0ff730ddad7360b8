// Mixtures: proportions, the weight schedule, resume and dp-invariance of the mixed stream,
// document ids, and the checks on the datasets a recipe names.
#include <map>
#include <set>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "data/mixture.hpp"
#include "data/prep.hpp"
#include "data/sampler.hpp"
#include "data/training_data.hpp"
#include "tests/support/corpus.hpp"
#include "tests/support/temp_dir.hpp"

using namespace strata;
using namespace strata::data;
using Catch::Matchers::Contains;

namespace {

std::string prep(const testing::TempDir& dir, const std::string& name, size_t paragraphs, unsigned seed) {
  testing::write_text((dir / (name + ".txt")).string(), testing::synthetic_corpus(paragraphs, seed));
  PrepOptions opt;
  opt.inputs = {(dir / (name + ".txt")).string()};
  opt.out = (dir / name).string();
  prep_dataset(opt);
  return opt.out;
}

}  // namespace

TEST_CASE("mixture proportions match the weights and each source is drawn in order", "[data][mixture]") {
  MixtureSampler s(3, {{0, {0.7, 0.2, 0.1}}}, 32, 5);
  std::vector<uint64_t> count(3, 0);
  const uint64_t n = 100000;
  for (uint64_t i = 0; i < n; ++i) {
    auto p = s.pick(i);
    REQUIRE(p.local == count[p.source]);  // 0, 1, 2, ... per source: no gaps, no repeats
    ++count[p.source];
  }
  CHECK(std::abs(double(count[0]) / n - 0.7) < 1e-3);
  CHECK(std::abs(double(count[1]) / n - 0.2) < 1e-3);
  CHECK(std::abs(double(count[2]) / n - 0.1) < 1e-3);
  // Every global batch of 32 already has its share, to within 2 samples.
  for (uint64_t step = 0; step < 50; ++step) {
    std::vector<int> c(3, 0);
    for (uint64_t i = step * 32; i < (step + 1) * 32; ++i) ++c[s.pick(i).source];
    CHECK(std::abs(c[0] - 22.4) <= 2.0);
    CHECK(std::abs(c[2] - 3.2) <= 2.0);
  }
  // A zero weight is never drawn; the seed changes the interleaving, not the proportions.
  MixtureSampler z(3, {{0, {1, 0, 1}}}, 8, 5), other(3, {{0, {0.7, 0.2, 0.1}}}, 32, 6);
  int differs = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    REQUIRE(z.pick(i).source != 1);
    differs += other.pick(i).source != s.pick(i).source;
  }
  CHECK(differs > 50);
}

TEST_CASE("the weight schedule switches at the configured step", "[data][mixture]") {
  DataConfig cfg;
  cfg.paths = {"a", "b"};
  cfg.weights = {0.9, 0.1};
  cfg.final_weights = {0.2, 0.8};
  cfg.final_fraction = 0.2;
  auto phases = mixture_phases(cfg, 2, 100);
  REQUIRE(phases.size() == 2);
  REQUIRE(phases[1].start_step == 80);
  const uint64_t G = 40;
  MixtureSampler s(2, phases, G, 1);
  REQUIRE(s.weights_at(79)[1] == Approx(0.1));
  REQUIRE(s.weights_at(80)[1] == Approx(0.8));
  std::vector<uint64_t> seen_b;
  for (uint64_t step = 0; step < 100; ++step) {
    int b = 0;
    for (uint64_t i = step * G; i < (step + 1) * G; ++i) {
      auto p = s.pick(i);
      if (p.source == 1) {
        ++b;
        seen_b.push_back(p.local);
      }
    }
    if (step < 80) REQUIRE(std::abs(b - 4) <= 1);
    else REQUIRE(std::abs(b - 32) <= 1);
  }
  // Source b's samples continue across the switch: 0, 1, 2, ... with no restart.
  for (size_t k = 0; k < seen_b.size(); ++k) REQUIRE(seen_b[k] == k);
  // A hard switch: only source 0 before step 80, only source 1 from it.
  cfg.weights = {1, 0};
  cfg.final_weights = {0, 1};
  MixtureSampler hard(2, mixture_phases(cfg, 2, 100), G, 1);
  REQUIRE(hard.pick(80 * G - 1).source == 0);
  REQUIRE(hard.pick(80 * G).source == 1);
  REQUIRE(hard.pick(80 * G).local == 0);

  cfg.final_fraction = 0;
  REQUIRE_THROWS_WITH(mixture_phases(cfg, 2, 100), Contains("data.final_fraction"));
  cfg.final_fraction = 0.1;
  cfg.final_weights = {1, 2, 3};
  REQUIRE_THROWS_WITH(mixture_phases(cfg, 2, 100), Contains("data.final_weights has 3 entries"));
}

TEST_CASE("mixed batches: resume mid-epoch continues exactly, and dp = 1, 2, 4 see the same global batch", "[data][mixture][sampler]") {
  testing::TempDir dir;
  DataConfig cfg;
  cfg.paths = {prep(dir, "a", 200, 1), prep(dir, "b", 30, 2)};
  cfg.weights = {0.6, 0.4};
  cfg.final_weights = {0.1, 0.9};
  cfg.final_fraction = 0.5;
  const int64_t T = 32, mb = 4, accum = 2, steps = 40;
  const uint64_t G = mb * accum;
  TrainingData full(cfg, T, 11, steps, G);
  // Source b has ~135 windows and is drawn ~200 times: its stream crosses into a second epoch.
  std::vector<at::Tensor> ref;
  for (int64_t step = 0; step < steps; ++step)
    for (int64_t a = 0; a < accum; ++a) ref.push_back(full.train_batch(micro_batch_indices(step, a, mb, accum, 0, 1)).inputs);
  // "Restart" at step 23 with a fresh object: the same sequences follow.
  TrainingData resumed(cfg, T, 11, steps, G);
  for (int64_t step = 23; step < steps; ++step)
    for (int64_t a = 0; a < accum; ++a)
      REQUIRE(at::equal(resumed.train_batch(micro_batch_indices(step, a, mb, accum, 0, 1)).inputs, ref[step * accum + a]));
  // dp ranks take slices of the same global batch.
  for (int64_t dp : {2, 4}) {
    for (int64_t step : {0, 19, 20, 39}) {
      std::vector<at::Tensor> parts;
      for (int64_t a = 0; a < accum; ++a)
        for (int64_t r = 0; r < dp; ++r) parts.push_back(full.train_batch(micro_batch_indices(step, a, mb / dp, accum, r, dp)).inputs);
      auto global = at::cat({ref[step * accum], ref[step * accum + 1]});
      REQUIRE(at::equal(at::cat(parts), global));
    }
  }
  // The validation set is fixed per dataset.
  auto v0 = full.val_batch(1, {0, 1, 2});
  REQUIRE(at::equal(v0.inputs, resumed.val_batch(1, {0, 1, 2}).inputs));
  REQUIRE(v0.sources[0].item<int64_t>() == 1);
  REQUIRE_FALSE(at::equal(v0.inputs, full.val_batch(0, {0, 1, 2}).inputs));
}

TEST_CASE("one dataset samples exactly as the plain loader does", "[data][mixture]") {
  testing::TempDir dir;
  DataConfig cfg;
  cfg.path = prep(dir, "a", 200, 1);
  TrainingData td(cfg, 16, 7, 10, 8);
  TokenDataset ds(cfg.path, "train");
  BatchLoader plain(ds, 16, 7, true);
  std::vector<uint64_t> idx = {0, 1, 2, 3, 100, 101};
  REQUIRE(at::equal(td.train_batch(idx).inputs, plain.get(idx).inputs));
  REQUIRE(at::equal(td.train_batch(idx).targets, plain.get(idx).targets));
}

TEST_CASE("document ids and positions restart after each EOS", "[data][packing]") {
  Batch b;
  b.inputs = at::tensor(std::vector<int64_t>{5, 6, 256, 7, 256, 256, 8, 9}, at::kLong).view({2, 4});
  add_document_ids(b, 256);
  REQUIRE(at::equal(b.doc_ids, at::tensor(std::vector<int64_t>{0, 0, 0, 1, 0, 1, 2, 2}, at::kLong).view({2, 4})));
  REQUIRE(at::equal(b.positions, at::tensor(std::vector<int64_t>{0, 1, 2, 0, 0, 0, 0, 1}, at::kLong).view({2, 4})));

  testing::TempDir dir;
  DataConfig cfg;
  cfg.path = prep(dir, "a", 200, 1);
  TrainingData off(cfg, 64, 1, 10, 4);
  REQUIRE_FALSE(off.train_batch({0, 1}).doc_ids.defined());
  cfg.document_mask = true;
  TrainingData on(cfg, 64, 1, 10, 4);
  auto batch = on.train_batch({0, 1, 2, 3});
  REQUIRE(batch.doc_ids.sizes() == batch.inputs.sizes());
  // Each EOS in a row starts a new document on the next token.
  auto eos_before = at::cumsum((batch.inputs == 256).to(at::kLong), 1) - (batch.inputs == 256).to(at::kLong);
  REQUIRE(at::equal(batch.doc_ids, eos_before));
  REQUIRE(batch.doc_ids.max().item<int64_t>() >= 1);  // 64-token windows cross ~100-byte documents
}

TEST_CASE("dataset checks name the dataset: tokenizer kind, mixed tokenizers, model vocabulary", "[data][errors]") {
  testing::TempDir dir;
  DataConfig cfg;
  cfg.path = prep(dir, "a", 100, 1);
  cfg.tokenizer = "sentencepiece";
  REQUIRE_THROWS_WITH(TrainingData(cfg, 16, 1, 10, 4), Contains("a'") && Contains("data.tokenizer is 'sentencepiece'"));
  cfg.tokenizer = "byte";
  cfg.paths = {cfg.path};
  REQUIRE_THROWS_WITH(TrainingData(cfg, 16, 1, 10, 4), Contains("data.path and data.paths are both set"));
  cfg.path.clear();
  cfg.paths = {};
  REQUIRE_THROWS_WITH(TrainingData(cfg, 16, 1, 10, 4), Contains("data.path is empty"));
  cfg.paths = {(dir / "a").string(), (dir / "missing").string()};
  REQUIRE_THROWS_WITH(TrainingData(cfg, 16, 1, 10, 4), Contains("missing") && Contains("manifest.yaml"));
  // A mixture needs one tokenizer.
  testing::write_text((dir / "s.txt").string(), testing::synthetic_corpus(200, 3));
  PrepOptions sp;
  sp.inputs = {(dir / "s.txt").string()};
  sp.out = (dir / "s").string();
  sp.train_tokenizer = true;
  sp.vocab_size = 350;
  prep_dataset(sp);
  cfg.paths = {(dir / "a").string(), sp.out};
  REQUIRE_THROWS_WITH(TrainingData(cfg, 16, 1, 10, 4), Contains(sp.out) && Contains("data.tokenizer is 'byte'"));
  PrepOptions sp2 = sp;
  sp2.vocab_size = 320;
  sp2.out = (dir / "s2").string();
  prep_dataset(sp2);
  cfg.tokenizer = "sentencepiece";
  cfg.paths = {sp.out, sp2.out};
  REQUIRE_THROWS_WITH(TrainingData(cfg, 16, 1, 10, 4), Contains("s2") && Contains("different tokenizers"));
  cfg.paths = {sp.out};
  TrainingData ok(cfg, 16, 1, 10, 4);
  REQUIRE(ok.manifest().vocab_size <= 350);
  // The model's vocabulary must hold the dataset's.
  REQUIRE_NOTHROW(check_model_vocab(ok.manifest(), sp.out, 352));
  REQUIRE_THROWS_WITH(check_model_vocab(ok.manifest(), sp.out, 262),
                      Contains(sp.out) && Contains("model.vocab_size is 262"));
}

TEST_CASE("data.objective = mlm: masked rows, targets only at chosen positions, fixed validation masks", "[data][mlm]") {
  testing::TempDir dir;
  DataConfig cfg;
  cfg.path = prep(dir, "a", 200, 1);
  TrainingData clm(cfg, 64, 1, 10, 4);
  cfg.objective = "mlm";
  TrainingData mlm(cfg, 64, 1, 10, 4);
  REQUIRE(mlm.masked_lm());
  auto plain = clm.train_batch({0, 1, 2, 3});
  auto masked = mlm.train_batch({0, 1, 2, 3});
  const auto chosen = masked.targets.ne(-100);
  const double rate = chosen.to(at::kDouble).mean().item<double>();
  REQUIRE(rate > 0.10);
  REQUIRE(rate < 0.20);
  // Targets hold the original (unshifted) tokens where chosen; unchosen inputs are untouched.
  REQUIRE(at::equal(masked.targets.masked_select(chosen), plain.inputs.masked_select(chosen)));
  REQUIRE(at::equal(masked.inputs.masked_select(chosen.logical_not()), plain.inputs.masked_select(chosen.logical_not())));
  const double mask_share = masked.inputs.eq(259).masked_select(chosen).to(at::kDouble).mean().item<double>();
  REQUIRE(mask_share > 0.6);  // 80% [MASK] (id 259 in the byte tokenizer)
  // Deterministic per sample index; validation uses other (fixed) masks than training.
  REQUIRE(at::equal(mlm.train_batch({2}).inputs[0], masked.inputs[2]));
  auto v1 = mlm.val_batch(0, {0, 1}), v2 = mlm.val_batch(0, {0, 1});
  REQUIRE(at::equal(v1.inputs, v2.inputs));
  REQUIRE(at::equal(v1.targets, v2.targets));
  REQUIRE(v1.targets.ne(-100).any().item<bool>());
  cfg.objective = "mlx";
  REQUIRE_THROWS_WITH(TrainingData(cfg, 64, 1, 10, 4), Contains("data.objective") && Contains("mlx"));
  REQUIRE(resolve_objective("auto", true, "bert") == "mlm");
  REQUIRE(resolve_objective("auto", false, "gpt") == "clm");
  REQUIRE_THROWS_WITH(resolve_objective("clm", true, "bert"), Contains("data.objective = clm") && Contains("bert"));
}
