// bert2BERT two-stage pre-training (recipe growth.two_stage, specs/growth.md §2.4): the prefix
// forward, the depth generator, and stage-1 / stage-2 steps through the trainer, checked on the
// checkpoints of consecutive steps.
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "checkpoint/checkpoint.hpp"
#include "growth/two_stage.hpp"
#include "models/language_model.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_dataset.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"
#include "trainer/two_stage_hook.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {

const char* kGpt = "{n_layer: 6, d_model: 32, n_head: 2, vocab_size: 262, max_seq_len: 32}";
const char* kLlama = "{arch: llama, n_layer: 6, d_model: 32, n_head: 4, n_kv_head: 2, d_ff: 64, vocab_size: 262, "
                     "max_seq_len: 32, bias: false, tie_embeddings: false}";
const char* kBert = "{arch: bert, n_layer: 6, d_model: 32, n_head: 2, vocab_size: 262, max_seq_len: 32}";

trainer::RunConfig recipe(const std::string& model, const std::string& extra, std::vector<std::string> sets) {
  return trainer::load_recipe_text("model: " + model + R"(
train: {micro_batch: 4, grad_accum: 1, seq_len: 32, log_every: 100, eval_every: 0, eval_batches: 1, threads: 2}
optim: {lr: 0.003, weight_decay: 0.1}
schedule: {warmup_steps: 2, name: constant}
)" + extra,
                                   "two_stage.yaml", sets);
}

// "two_stage/depth" of each metrics.jsonl row (0 where the row has none), in step order.
std::vector<int64_t> depths(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  std::vector<int64_t> out;
  std::string line;
  const std::regex re("\"two_stage/depth\": ?([0-9.]+)");
  while (std::getline(in, line)) {
    std::smatch m;
    out.push_back(std::regex_search(line, m, re) ? static_cast<int64_t>(std::stod(m[1])) : 0);
  }
  return out;
}

checkpoint::CheckpointState ckpt(const fs::path& run_dir, int64_t step) {
  return checkpoint::load_checkpoint(run_dir / "checkpoints" / ("step_" + std::to_string(step)));
}

bool same(const at::Tensor& a, const at::Tensor& b) { return a.sizes() == b.sizes() && at::equal(a, b); }

// Between the checkpoints of steps k and k + 1 (a step that ran `blocks` bottom blocks with block_layers = 2):
// exactly the trained parameters and their AdamW moments changed. blocks == 0: every parameter changed.
void check_step(const checkpoint::CheckpointState& before, const checkpoint::CheckpointState& after, int64_t blocks,
                bool train_shared = false) {
  int64_t n_model = 0;
  for (const auto& [key, t] : before.tensors) {
    if (key.rfind("model.", 0) != 0) continue;
    ++n_model;
    const auto name = key.substr(6);
    const bool trained = blocks == 0 || growth::trained_in_stage1(name, blocks / 2, 2, train_shared);
    INFO(name << " blocks " << blocks);
    REQUIRE(same(t, after.tensors.at(key)) == !trained);
    REQUIRE(same(before.tensors.at("optim.adamw.m." + name), after.tensors.at("optim.adamw.m." + name)) == !trained);
    REQUIRE(same(before.tensors.at("optim.adamw.v." + name), after.tensors.at("optim.adamw.v." + name)) == !trained);
  }
  REQUIRE(n_model > 10);
}

}  // namespace

TEST_CASE("a model's prefix forward equals a separately built model of that depth", "[growth][two_stage]") {
  torch::NoGradGuard no_grad;
  for (const char* spec : {kGpt, kLlama, kBert}) {
    auto big_cfg = recipe(spec, "", {}).model;
    auto small_cfg = big_cfg;
    small_cfg.n_layer = 4;
    auto big = models::make_model(big_cfg), small = models::make_model(small_cfg);
    big->init_weights(7);
    small->init_weights(99);
    big->eval(), small->eval();
    auto big_params = big->named_parameters();
    for (auto& kv : small->named_parameters()) kv.value().copy_(big_params[kv.key()]);
    auto ids = at::randint(0, 262, {2, 16}, at::kLong);
    INFO(big_cfg.arch);
    const auto prefix = big->forward_prefix(ids, 4), ref = small->forward(ids);
    REQUIRE(prefix.sizes() == ref.sizes());
    REQUIRE((prefix - ref).abs().max().item<double>() < 1e-6);
    REQUIRE(at::equal(big->forward_prefix(ids, 6), big->forward(ids)));  // the whole depth is the model
    REQUIRE_FALSE(at::allclose(big->forward_prefix(ids, 2), ref, 1e-3, 1e-3));
    REQUIRE_THROWS_WITH(big->forward_prefix(ids, 0), Catch::Contains("outside [1, 6]"));
    REQUIRE_THROWS_WITH(big->forward_prefix(ids, 7), Catch::Contains("outside [1, 6]"));
  }
}

TEST_CASE("stage-1 parameter sets, lengths and the depth generator", "[growth][two_stage]") {
  REQUIRE(growth::prefix_count(12, 3) == 4);
  REQUIRE_THROWS_WITH(growth::prefix_count(12, 5), Catch::Contains("growth.two_stage.block_layers = 5 must divide"));
  // depth 2 of block_layers 3: layers 3, 4, 5
  REQUIRE(growth::trained_in_stage1("blocks.3.attn.wq.weight", 2, 3, false));
  REQUIRE(growth::trained_in_stage1("blocks.5.mlp.w2.weight", 2, 3, false));
  REQUIRE_FALSE(growth::trained_in_stage1("blocks.2.mlp.w2.weight", 2, 3, false));
  REQUIRE_FALSE(growth::trained_in_stage1("blocks.6.norm1.weight", 2, 3, false));
  REQUIRE_FALSE(growth::trained_in_stage1("tok_emb.weight", 2, 3, false));
  REQUIRE(growth::trained_in_stage1("tok_emb.weight", 2, 3, true));
  REQUIRE(growth::trained_in_stage1("mlm_bias", 1, 3, true));

  growth::TwoStageConfig c;
  c.block_layers = 3;
  REQUIRE_THROWS_WITH(growth::stage1_steps(c, 100, 128), Catch::Contains("set exactly one of stage1_tokens"));
  c.stage1_tokens = 1000;  // ceil(1000 / 128) = 8
  REQUIRE(growth::stage1_steps(c, 100, 128) == 8);
  c.stage1_fraction = 0.5;
  REQUIRE_THROWS_WITH(growth::stage1_steps(c, 100, 128), Catch::Contains("set exactly one"));
  c.stage1_tokens = 0;
  REQUIRE(growth::stage1_steps(c, 100, 128) == 50);
  c.stage1_fraction = 0.0, c.stage1_tokens = 128 * 101;
  REQUIRE_THROWS_WITH(growth::stage1_steps(c, 100, 128), Catch::Contains("only 100 steps remain"));

  growth::DepthSampler a(5, 4), b(5, 4), other(6, 4);
  std::vector<int64_t> sa, sb, so;
  std::map<int64_t, int> counts;
  for (int k = 0; k < 4000; ++k) {
    sa.push_back(a.next()), sb.push_back(b.next()), so.push_back(other.next());
    ++counts[sa.back()];
  }
  REQUIRE(sa == sb);
  REQUIRE(sa != so);
  REQUIRE(counts.size() == 4);  // 1..4, each about 1000 times
  for (const auto& [d, n] : counts) {
    REQUIRE(d >= 1);
    REQUIRE(d <= 4);
    REQUIRE(std::abs(n - 1000) < 120);
  }
  auto saved = a.state();
  std::vector<int64_t> next_a, next_c;
  for (int k = 0; k < 50; ++k) next_a.push_back(a.next());
  growth::DepthSampler c2(123, 4);
  c2.set_state(saved);
  for (int k = 0; k < 50; ++k) next_c.push_back(c2.next());
  REQUIRE(next_a == next_c);
}

TEST_CASE("a stage-1 step updates exactly the top block_layers blocks of its prefix; stage 2 updates all",
          "[growth][two_stage][e2e]") {
  at::set_num_threads(2);
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  for (const char* spec : {kGpt, kLlama, kBert}) {
    const auto run = dir / ("run" + std::to_string(std::string(spec).size()));
    // 12 steps: stage 1 is 8 steps (1024 tokens at 128 per step), stage 2 the last 4.
    auto cfg = recipe(spec, "growth: {two_stage: {block_layers: 2, stage1_tokens: 1024, seed: 3}}\n",
                      {"data.path=" + ds, "run.dir=" + run.string(), "train.steps=12", "checkpoint.every=1",
                       "checkpoint.keep=20"});
    trainer::Trainer t(cfg, false);
    auto r = t.run();
    REQUIRE(r.losses.size() == 12);
    const auto d = depths(run);
    REQUIRE(d.size() == 12);
    INFO(spec);
    std::set<int64_t> seen(d.begin(), d.begin() + 8);
    REQUIRE(seen.size() == 3);  // depths 2, 4, 6 all drawn in stage 1 (seed 3)
    for (int64_t s = 0; s < 8; ++s) REQUIRE((d[s] == 2 || d[s] == 4 || d[s] == 6));
    for (int64_t s = 8; s < 12; ++s) REQUIRE(d[s] == 6);
    for (int64_t k = 1; k < 12; ++k) check_step(ckpt(run, k), ckpt(run, k + 1), k < 8 ? d[k] : 0);
    // The same seed draws the same depths.
    auto again = cfg;
    again.run.dir = (run.string() + "_again");
    trainer::Trainer(again, false).run();
    REQUIRE(depths(again.run.dir) == d);
  }
}

TEST_CASE("train_shared also updates the embeddings, final norm and head in stage 1", "[growth][two_stage][e2e]") {
  at::set_num_threads(2);
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  auto cfg = recipe(kGpt, "growth: {two_stage: {block_layers: 2, stage1_fraction: 1.0, seed: 3, train_shared: true}}\n",
                    {"data.path=" + ds, "run.dir=" + (dir / "run").string(), "train.steps=4", "checkpoint.every=1", "checkpoint.keep=10"});
  trainer::Trainer(cfg, false).run();
  const auto d = depths(dir / "run");
  for (int64_t k = 1; k < 4; ++k) check_step(ckpt(dir / "run", k), ckpt(dir / "run", k + 1), d[k], /*train_shared=*/true);
}

TEST_CASE("stage 1 under activation checkpointing updates the same parameter set", "[growth][two_stage][e2e]") {
  at::set_num_threads(2);
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  auto cfg = recipe(kLlama, "growth: {two_stage: {block_layers: 2, stage1_fraction: 1.0, seed: 3}}\n",
                    {"data.path=" + ds, "run.dir=" + (dir / "run").string(), "train.steps=4", "checkpoint.every=1", "checkpoint.keep=10",
                     "train.activation_checkpointing=true"});
  trainer::Trainer(cfg, false).run();
  const auto d = depths(dir / "run");
  for (int64_t k = 1; k < 4; ++k) check_step(ckpt(dir / "run", k), ckpt(dir / "run", k + 1), d[k]);
}

TEST_CASE("resuming in the middle of stage 1 is bitwise equal to a straight run, also after an in-run growth",
          "[growth][two_stage][e2e]") {
  at::set_num_threads(2);
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  // g_stack 3 -> 6 layers at step 3 (384 tokens); stage 1 over steps [3, 9), stage 2 to step 12.
  const std::string growth = "growth: {operator: g_stack, factor: 2, at_tokens: '384', rewarm_steps: 2, "
                             "two_stage: {block_layers: 2, stage1_fraction: 0.6667, seed: 11}}\n";
  auto straight = recipe(kGpt, growth, {"data.path=" + ds, "run.dir=" + (dir / "straight").string(), "train.steps=12"});
  trainer::Trainer(straight, false).run();
  auto split = straight;
  split.run.dir = (dir / "split").string();
  trainer::Trainer(split, false).run(/*stop_after=*/6);  // stage 1, 3 depths drawn
  REQUIRE(ckpt(dir / "split", 6).tensors.count("rng.two_stage") == 1);
  trainer::Trainer resumed(split, true);
  resumed.run();
  const auto a = ckpt(dir / "straight", 12), b = ckpt(dir / "split", 12);
  for (const auto& [key, t] : a.tensors) {
    INFO(key);
    REQUIRE(same(t, b.tensors.at(key)));
  }
  REQUIRE(a.tensors.size() == b.tensors.size());
  const auto d = depths(dir / "straight");
  REQUIRE(depths(dir / "split") == d);
  REQUIRE(d.size() == 12);
  for (int64_t s = 0; s < 3; ++s) REQUIRE(d[s] == 0);  // before the growth event: no two-stage rows
  for (int64_t s = 3; s < 11; ++s) REQUIRE(d[s] % 2 == 0);
  for (int64_t s = 9; s < 12; ++s) REQUIRE(d[s] == 6);
  REQUIRE(std::set<int64_t>(d.begin() + 3, d.begin() + 9).size() > 1);
}

TEST_CASE("two-stage training refuses what stage 1 does not support, naming the key", "[growth][two_stage]") {
  auto base = recipe(kGpt, "growth: {two_stage: {block_layers: 2, stage1_tokens: 256}}\n", {"train.steps=10"});
  auto expect = [&](std::vector<std::string> sets, const std::string& what) {
    auto c = recipe(kGpt, "growth: {two_stage: {block_layers: 2, stage1_tokens: 256}}\n", sets);
    REQUIRE_THROWS_WITH(trainer::make_two_stage_hook(c, 0, 1), Catch::Contains(what));
  };
  expect({"parallel.tp=2"}, "parallel.tp = 2");
  expect({"parallel.pp=2"}, "parallel.pp = 2");
  expect({"parallel.zero1=true"}, "parallel.zero1");
  expect({"optim.name=sophia"}, "optim.name = sophia");
  expect({"growth.two_stage.block_layers=4"}, "block_layers = 4 must divide model.n_layer = 6");
  REQUIRE_THROWS_WITH(trainer::make_two_stage_hook(base, 0, 2), Catch::Contains("data parallelism"));
  REQUIRE(trainer::make_two_stage_hook(base, 0, 1) != nullptr);
  auto off = recipe(kGpt, "", {});
  REQUIRE(trainer::make_two_stage_hook(off, 0, 1) == nullptr);
  // The resolved recipe prints the nested section and parses back to the same values.
  auto text = trainer::dump_recipe(base);
  REQUIRE(text.find("two_stage:") != std::string::npos);
  auto back = trainer::load_recipe_text(text, "dumped.yaml");
  REQUIRE(back.growth.two_stage.block_layers == 2);
  REQUIRE(back.growth.two_stage.stage1_tokens == 256);
}
