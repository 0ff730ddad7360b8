// Pipeline parallelism (parallel.pp > 1): each stage's Sparsifier holds the prunable matrices of its
// own blocks, with Accounting::matrices listing the whole model's. Two "stages" (blocks.0 / blocks.1
// of one model) must give what one Sparsifier over the whole model gives: the same weights and
// masks bitwise, the same metrics (sparsity, nonzero_params, n_avg, eff FLOPs) and gradual plan, and
// checkpoint state that converts between the two layouts (pp = 2 -> 1 and 1 -> 2).
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "models/language_model.hpp"
#include "optim/optimizer.hpp"
#include "sparsity/sparsifier.hpp"

using namespace strata;
using namespace strata::sparsity;

namespace {

std::shared_ptr<models::LanguageModel> two_block_model() {
  models::ModelConfig c;
  c.arch = "gpt", c.n_layer = 2, c.d_model = 32, c.n_head = 4, c.vocab_size = 64, c.max_seq_len = 16;
  at::manual_seed(5);
  auto m = models::make_model(c);
  m->init_weights(5);
  return m;
}

std::unique_ptr<optim::Optimizer> adamw(models::LanguageModel& m) {
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (auto& kv : m.named_parameters()) named.emplace_back(kv.key(), kv.value());
  auto opt = optim::make_optimizer(optim::OptimConfig{}, optim::make_param_groups(named, 0.1));
  opt->set_tokens_per_step(64);
  return opt;
}

Accounting accounting(models::LanguageModel& m, bool with_matrices) {
  Accounting a;
  for (const auto& p : m.parameters()) a.total_params += p.numel();
  a.flops_per_token = 6.0 * static_cast<double>(a.total_params) + 1e4;
  a.tokens_per_step = 64;
  if (with_matrices)
    for (const auto& p : prunable_set(m)) a.matrices.emplace_back(p.name, p.weight.numel());
  return a;
}

std::vector<Prunable> of_block(models::LanguageModel& m, const std::string& prefix) {
  std::vector<Prunable> out;
  for (auto& p : prunable_set(m))
    if (p.name.rfind(prefix, 0) == 0) out.push_back(p);
  return out;
}

// One step in the trainer's hook order, the same random gradient for every parameter of `m`.
void step(models::LanguageModel& m, optim::Optimizer& opt, const std::vector<Sparsifier*>& sps, int64_t s) {
  for (auto* sp : sps) sp->on_step_begin(s, opt);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + s);
  for (auto& kv : m.named_parameters()) kv.value().mutable_grad() = at::randn(kv.value().sizes(), gen);
  for (auto* sp : sps) sp->after_backward(opt);
  opt.step(1e-2);
  opt.zero_grad();
  for (auto* sp : sps) sp->after_step(opt);
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) { return a.sizes() == b.sizes() && at::equal(a, b); }

void require_same_metrics(const Sparsifier& a, const Sparsifier& b) {
  const auto ma = a.metrics(), mb = b.metrics();
  REQUIRE(ma.size() == mb.size());
  for (size_t k = 0; k < ma.size(); ++k) {
    INFO(ma[k].first);
    REQUIRE(ma[k].first == mb[k].first);
    REQUIRE(ma[k].second == mb[k].second);  // the same arithmetic on the same counts: exact
  }
}

void run_two_stages(const SparsityConfig& c, int64_t steps) {
  at::set_num_threads(1);
  auto whole = two_block_model(), piped = two_block_model();
  auto opt_w = adamw(*whole), opt_p = adamw(*piped);
  Sparsifier sw(c, prunable_set(*whole), steps, accounting(*whole, false), nullptr);
  Sparsifier s0(c, of_block(*piped, "blocks.0."), steps, accounting(*piped, true), nullptr);
  Sparsifier s1(c, of_block(*piped, "blocks.1."), steps, accounting(*piped, true), nullptr);
  REQUIRE(s0.prunable().size() == 6);
  REQUIRE(s1.prunable().size() == 6);
  REQUIRE(s0.matrices() == sw.matrices());
  REQUIRE(s0.prunable_list() == sw.prunable_list());
  REQUIRE(s0.prunable_entries() == sw.prunable_entries());
  REQUIRE(s0.plan().sparsity == sw.plan().sparsity);
  REQUIRE(s1.plan().start_step == sw.plan().start_step);
  bool pruned_mid = false;
  for (int64_t s = 0; s < steps; ++s) {
    step(*whole, *opt_w, {&sw}, s);
    step(*piped, *opt_p, {&s0, &s1}, s);
    require_same_metrics(s0, sw);
    require_same_metrics(s1, sw);
    const double sparsity = sw.metrics()[0].second;
    pruned_mid |= sparsity > 0 && sparsity < c.sparsity;
  }
  if (c.method == "gradual") REQUIRE(pruned_mid);  // the comparison covered the pruning window
  REQUIRE(sw.metrics()[0].second == Approx(c.sparsity).margin(1e-3));
  auto pw = whole->named_parameters(), pp = piped->named_parameters();
  for (const auto& kv : pw) {
    INFO(kv.key());
    REQUIRE(same_bits(kv.value(), pp[kv.key()]));
  }
  // Checkpoint state: each stage's masks are the whole run's; zeros and counters equal.
  const auto st_w = sw.state(), st_0 = s0.state(), st_1 = s1.state();
  std::map<std::string, at::Tensor> merged = st_0;  // what a pp = 2 checkpoint holds
  for (const auto& [k, v] : st_1) merged.emplace(k, v);
  REQUIRE(merged.size() == st_w.size());
  for (const auto& [k, v] : st_w) {
    INFO(k);
    REQUIRE(merged.count(k));
    REQUIRE(same_bits(v, merged.at(k)));
  }
  REQUIRE(same_bits(st_0.at("sparsity.zeros"), st_w.at("sparsity.zeros")));
  REQUIRE(same_bits(st_1.at("sparsity.counters"), st_w.at("sparsity.counters")));
  // pp = 2 -> 1: a whole-model Sparsifier loads the merged stage states; 1 -> 2: a stage loads the whole state.
  auto fresh_w = two_block_model(), fresh_p = two_block_model();
  Sparsifier lw(c, prunable_set(*fresh_w), steps, accounting(*fresh_w, false), nullptr);
  lw.load_state(merged, "pp = 2 state");
  Sparsifier l1(c, of_block(*fresh_p, "blocks.1."), steps, accounting(*fresh_p, true), nullptr);
  l1.load_state(st_w, "pp = 1 state");
  require_same_metrics(lw, sw);
  require_same_metrics(l1, sw);
  for (size_t i = 0; i < lw.masks().size(); ++i) REQUIRE(same_bits(lw.masks()[i], sw.masks()[i]));
  for (size_t i = 0; i < l1.masks().size(); ++i) REQUIRE(same_bits(l1.masks()[i], s1.masks()[i]));
}

}  // namespace

TEST_CASE("pipeline stages: gradual pruning per stage equals the whole model (weights, masks, metrics, state)",
          "[sparsity][pp]") {
  SparsityConfig c;
  c.method = "gradual", c.sparsity = 0.5, c.prune_every = 2;
  run_two_stages(c, 24);
}

TEST_CASE("pipeline stages: static masks per stage equal the whole model's (seeded by the pp = 1 names)", "[sparsity][pp]") {
  SparsityConfig c;
  c.method = "static", c.sparsity = 0.75, c.seed = 3;
  run_two_stages(c, 6);
}

TEST_CASE("pipeline stages: a stage's matrix missing from the model's list is refused, naming it", "[sparsity][pp]") {
  auto m = two_block_model();
  auto acc = accounting(*m, true);
  acc.matrices.erase(acc.matrices.begin() + 7);  // blocks.1's second matrix
  SparsityConfig c;
  c.method = "gradual";
  REQUIRE_THROWS_WITH(Sparsifier(c, of_block(*m, "blocks.1."), 10, acc, nullptr),
                      Catch::Contains("not in the model's list") && Catch::Contains("blocks.1."));
  acc = accounting(*m, true);
  acc.matrices[0].second += 1;
  REQUIRE_THROWS_WITH(Sparsifier(c, of_block(*m, "blocks.0."), 10, acc, nullptr), Catch::Contains("entries at full size"));
}
