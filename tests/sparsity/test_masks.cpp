// Spec §4.1 (SPDF masks under AdamW and Sophia), §4.3 (magnitude pruning events), the prunable set.
#include <map>
#include <set>
#include <string>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/language_model.hpp"
#include "optim/optimizer.hpp"
#include "sparsity/masks.hpp"
#include "sparsity/sparsifier.hpp"

using namespace strata;
using namespace strata::sparsity;

namespace {

models::ModelConfig tiny_cfg(const std::string& arch = "gpt") {
  models::ModelConfig c;
  c.arch = arch;
  c.n_layer = 2, c.d_model = 32, c.n_head = 4, c.vocab_size = 64, c.max_seq_len = 16, c.multiple_of = 16;
  if (arch == "llama") c.bias = false, c.tie_embeddings = false;
  return c;
}

std::shared_ptr<models::LanguageModel> tiny_model(int64_t seed = 7, const std::string& arch = "gpt") {
  at::manual_seed(seed);
  auto m = models::make_model(tiny_cfg(arch));
  m->init_weights(seed);
  return m;
}

std::unique_ptr<optim::Optimizer> optimizer_for(models::LanguageModel& m, const std::string& name) {
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (auto& kv : m.named_parameters()) named.emplace_back(kv.key(), kv.value());
  optim::OptimConfig oc;
  oc.name = name;
  auto opt = optim::make_optimizer(oc, optim::make_param_groups(named, 0.1));
  opt->set_tokens_per_step(64);
  return opt;
}

SparsityConfig static_cfg(double s, int64_t seed = 11) {
  SparsityConfig c;
  c.method = "static", c.sparsity = s, c.seed = seed;
  return c;
}

bool all_bitwise_zero(const at::Tensor& t) { return (t.contiguous().view(at::kInt) == 0).all().item<bool>(); }

// 20 steps with random gradients through the hook order the trainer uses.
void train_random(models::LanguageModel& m, optim::Optimizer& opt, Sparsifier& sp, int64_t steps, int64_t first = 0) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
  for (int64_t s = first; s < first + steps; ++s) {
    sp.on_step_begin(s, opt);
    for (auto& kv : m.named_parameters()) kv.value().mutable_grad() = at::randn(kv.value().sizes(), gen);
    sp.after_backward(opt);
    opt.step(1e-2);
    opt.zero_grad();
    sp.after_step(opt);
  }
}

}  // namespace

TEST_CASE("prunable set: block Linear weights only, never embeddings, norms, biases or the head", "[sparsity][prunable]") {
  for (std::string arch : {"gpt", "llama"}) {
    auto m = tiny_model(7, arch);
    auto set = prunable_set(*m);
    std::set<std::string> names;
    for (const auto& p : set) names.insert(p.name);
    INFO(arch);
    const size_t per_block = arch == "gpt" ? 6 : 7;  // wq wk wv wo w1 w2 (+ w3 for SwiGLU)
    REQUIRE(names.size() == per_block * 2);
    REQUIRE(names.count("blocks.0.attn.wq.weight"));
    REQUIRE(names.count("blocks.1.mlp.w2.weight"));
    for (const auto& n : names) {
      REQUIRE(n.find("emb") == std::string::npos);
      REQUIRE(n.find("norm") == std::string::npos);
      REQUIRE(n.find("bias") == std::string::npos);
      REQUIRE(n.find("head") == std::string::npos);
    }
    for (const auto& p : set) REQUIRE(p.weight.dim() == 2);
  }
}

TEST_CASE("SPDF: exact zero count per matrix; 20 AdamW / Sophia steps keep masked weights and moments at 0",
          "[sparsity][static]") {
  at::set_num_threads(1);
  for (std::string name : {"adamw", "sophia"}) {
    INFO(name);
    auto m = tiny_model();
    std::map<std::string, at::Tensor> before;
    for (auto& kv : m->named_parameters()) before[kv.key()] = kv.value().detach().clone();
    auto opt = optimizer_for(*m, name);
    Sparsifier sp(static_cfg(0.75), prunable_set(*m), 20, {}, nullptr);
    for (size_t i = 0; i < sp.prunable().size(); ++i) {
      const auto& p = sp.prunable()[i];
      REQUIRE((~sp.masks()[i]).sum().item<int64_t>() == std::llround(0.75 * p.weight.numel()));
    }
    train_random(*m, *opt, sp, 20);
    if (name == "sophia") {  // a curvature refresh folds gradients into hc; after_step masks it again
      for (auto& kv : m->named_parameters()) kv.value().mutable_grad() = at::randn(kv.value().sizes());
      opt->update_hessian();
      sp.after_step(*opt);
    }
    auto state = opt->state();
    for (size_t i = 0; i < sp.prunable().size(); ++i) {
      const auto& p = sp.prunable()[i];
      const at::Tensor& keep = sp.masks()[i];
      REQUIRE(all_bitwise_zero(p.weight.masked_select(~keep)));
      REQUIRE((~keep).sum().item<int64_t>() == std::llround(0.75 * p.weight.numel()));
      for (const auto& kind : name == "adamw" ? std::vector<std::string>{"adamw.m.", "adamw.v."}
                                              : std::vector<std::string>{"sophia.m.", "sophia.hc."}) {
        const auto& st = state.at(kind + p.name);
        REQUIRE(all_bitwise_zero(st.masked_select(~keep)));
        REQUIRE((st.masked_select(keep) != 0).any().item<bool>());
      }
      // Every kept entry moved away from its initial value.
      REQUIRE((p.weight.masked_select(keep) != before.at(p.name).masked_select(keep)).all().item<bool>());
    }
    // Parameters outside the prunable set stay dense.
    REQUIRE((m->named_parameters()["blocks.0.norm1.weight"] != 0).all().item<bool>());
  }
}

TEST_CASE("SPDF: the same seed and name give the same mask on two 'ranks'; others differ", "[sparsity][static]") {
  auto a = tiny_model(1), b = tiny_model(2);  // different weights: the mask depends on (seed, name) only
  Sparsifier sa(static_cfg(0.5, 5), prunable_set(*a), 10, {}, nullptr);
  Sparsifier sb(static_cfg(0.5, 5), prunable_set(*b), 10, {}, nullptr);
  Sparsifier sc(static_cfg(0.5, 6), prunable_set(*tiny_model(1)), 10, {}, nullptr);
  for (size_t i = 0; i < sa.masks().size(); ++i) {
    REQUIRE(at::equal(sa.masks()[i], sb.masks()[i]));
    REQUIRE_FALSE(at::equal(sa.masks()[i], sc.masks()[i]));
  }
  REQUIRE_FALSE(at::equal(sa.masks()[0].flatten().slice(0, 0, 512), sa.masks()[1].flatten().slice(0, 0, 512)));
}

TEST_CASE("magnitude pruning: exact counts, survivors >= pruned, nested masks, ties by index", "[sparsity][magnitude]") {
  auto group = parallel::make_single_rank_group("t");
  Prunable p{"w", at::randn({24, 40}), {}};
  p.weight.slice(0, 0, 3).fill_(0.5);  // 120 tied magnitudes (signs differ below)
  p.weight.slice(0, 0, 3).slice(1, 0, 20).fill_(-0.5);
  at::Tensor keep;
  int64_t prev_zeros = 0;
  for (double s : {0.1, 0.3, 0.55, 0.8}) {
    const int64_t z = zeros_for(s, p.weight.numel());
    at::Tensor next = magnitude_mask(p, keep, z, *group);
    REQUIRE((~next).sum().item<int64_t>() == z);
    if (keep.defined()) REQUIRE((next & ~keep).sum().item<int64_t>() == 0);  // nested: nothing revived
    REQUIRE(z > prev_zeros);
    const auto absw = p.weight.abs();  // already-pruned entries are 0 here
    REQUIRE(absw.masked_select(next).min().item<float>() >= absw.masked_select(~next).max().item<float>());
    apply_mask(p.weight, next);
    REQUIRE(all_bitwise_zero(p.weight.masked_select(~next)));
    REQUIRE(p.weight.masked_select(next).abs().min().item<float>() > 0);
    keep = next, prev_zeros = z;
  }
  // Survivors vs pruned on the original values, one event, with the tied block straddling the cut.
  at::Tensor w = at::randn({8, 16});
  w.view(-1).slice(0, 10, 30).fill_(0.25);
  w.view(-1).slice(0, 10, 30).slice(0, 0, 20, 2).neg_();
  const auto absw = w.abs().view(-1);
  const int64_t below = (absw < 0.25).sum().item<int64_t>();
  Prunable q{"q", w.clone(), {}};
  const int64_t z = below + 7;  // cut through the middle of the 20 ties
  at::Tensor m = magnitude_mask(q, at::Tensor(), z, *group).view(-1);
  REQUIRE((~m).sum().item<int64_t>() == z);
  REQUIRE(absw.masked_select(m).min().item<float>() >= absw.masked_select(~m).max().item<float>());
  for (int64_t i = 10; i < 30; ++i) REQUIRE(m[i].item<bool>() == (i >= 17));  // the 7 lowest indices go
}

TEST_CASE("gradual Sparsifier: events follow the plan, masks nested, moments zeroed at pruned entries",
          "[sparsity][magnitude]") {
  at::set_num_threads(1);
  auto m = tiny_model();
  auto opt = optimizer_for(*m, "adamw");
  SparsityConfig c;
  c.method = "gradual", c.sparsity = 0.6, c.prune_every = 3;
  Sparsifier sp(c, prunable_set(*m), 40, {}, nullptr);
  std::vector<at::Tensor> prev;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (int64_t s = 0; s < 40; ++s) {
    sp.on_step_begin(s, *opt);
    const double target = sp.plan().sparsity[s];
    for (size_t i = 0; i < sp.prunable().size(); ++i) {
      const auto& p = sp.prunable()[i];
      const int64_t z = std::llround(target * p.weight.numel());
      if (z == 0) continue;
      REQUIRE((~sp.masks()[i]).sum().item<int64_t>() == z);
      if (i < prev.size() && prev[i].defined()) REQUIRE((sp.masks()[i] & ~prev[i]).sum().item<int64_t>() == 0);
    }
    prev = sp.masks();
    for (auto& kv : m->named_parameters()) kv.value().mutable_grad() = at::randn(kv.value().sizes(), gen);
    sp.after_backward(*opt);
    opt->step(1e-2);
    opt->zero_grad();
    sp.after_step(*opt);
  }
  REQUIRE(sp.metrics()[0].second == Approx(0.6).margin(1e-3));
  auto state = opt->state();
  for (size_t i = 0; i < sp.prunable().size(); ++i) {
    const auto& keep = sp.masks()[i];
    REQUIRE(all_bitwise_zero(state.at("adamw.v." + sp.prunable()[i].name).masked_select(~keep)));
    REQUIRE(all_bitwise_zero(sp.prunable()[i].weight.masked_select(~keep)));
  }
}

TEST_CASE("dense phase: masks dropped, the hook asks for a fresh optimizer once, weights grow back", "[sparsity][static]") {
  at::set_num_threads(1);
  auto m = tiny_model();
  auto opt = optimizer_for(*m, "adamw");
  auto c = static_cfg(0.75);
  c.dense_from_step = 5;
  Sparsifier sp(c, prunable_set(*m), 10, {}, nullptr);
  auto keep0 = sp.masks()[0].clone();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  int rebuilds = 0;
  for (int64_t s = 0; s < 10; ++s) {
    if (sp.on_step_begin(s, *opt)) {
      REQUIRE(s == 5);
      ++rebuilds;
      opt = optimizer_for(*m, "adamw");
    }
    for (auto& kv : m->named_parameters()) kv.value().mutable_grad() = at::randn(kv.value().sizes(), gen);
    sp.after_backward(*opt);
    opt->step(1e-2);
    opt->zero_grad();
    sp.after_step(*opt);
  }
  REQUIRE(rebuilds == 1);
  REQUIRE_FALSE(sp.masking());
  REQUIRE((sp.prunable()[0].weight.masked_select(~keep0) != 0).all().item<bool>());
  REQUIRE(sp.metrics()[0].second == 0.0);
}
