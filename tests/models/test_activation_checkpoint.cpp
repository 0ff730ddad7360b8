#include <set>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/activation_checkpoint.hpp"
#include "models/bert.hpp"
#include "models/language_model.hpp"
#include "tests/models/tiny_configs.hpp"

using namespace strata::models;
using strata::testing::tiny_config;

namespace {
// Loss and gradients of one training step (dropout on), from a fixed RNG state.
std::pair<double, std::map<std::string, at::Tensor>> step(LanguageModel& m, const at::Tensor& ids, const at::Tensor& mask) {
  at::manual_seed(11);
  for (auto& p : m.parameters()) p.mutable_grad() = at::Tensor();
  auto logits = m.forward(ids, mask);
  auto loss = at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), ids.view({-1}));
  loss.backward();
  std::map<std::string, at::Tensor> g;
  for (const auto& kv : m.named_parameters()) g[kv.key()] = kv.value().grad().clone();
  return {loss.item<double>(), g};
}
}  // namespace

TEST_CASE("Activation checkpointing gives identical gradients (dropout on)", "[models][activation_checkpoint]") {
  at::set_num_threads(1);
  for (const std::string arch : {"gpt", "llama", "bert"}) {
    INFO("arch " << arch);
    auto cfg = tiny_config(arch);
    cfg.dropout = 0.2;
    auto m = make_model(cfg);
    m->train();
    auto ids = at::randint(0, 50, {3, 12}, at::kLong);
    auto mask = at::ones({3, 12}, at::kBool);
    mask.narrow(1, 9, 3)[1].fill_(false);
    auto [loss_a, ga] = step(*m, ids, mask);
    REQUIRE(set_activation_checkpointing(*m, true) == cfg.n_layer);
    auto [loss_b, gb] = step(*m, ids, mask);
    REQUIRE(loss_a == loss_b);
    for (const auto& [name, g] : ga) {
      INFO(name);
      REQUIRE(at::equal(g, gb[name]));
    }
    // A different dropout draw changes the gradients: the comparison above can fail.
    at::manual_seed(12);
    auto logits = m->forward(ids, mask);
    auto loss_c = at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), ids.view({-1})).item<double>();
    REQUIRE(loss_c != loss_a);
  }
}

TEST_CASE("Checkpointed blocks keep no activations: forward runs without a graph inside the block", "[models][activation_checkpoint]") {
  auto cfg = tiny_config("llama");
  auto m = make_model(cfg);
  set_activation_checkpointing(*m, true);
  auto ids = at::randint(0, 50, {2, 8}, at::kLong);
  auto logits = m->forward(ids);
  // The output of a checkpointed model is produced by the custom function node, not by the
  // block's own ops: walk from the loss to the first block boundary and find it.
  bool found = false;
  std::vector<std::shared_ptr<torch::autograd::Node>> stack = {logits.grad_fn()};
  std::set<torch::autograd::Node*> seen;
  while (!stack.empty() && !found) {
    auto n = stack.back();
    stack.pop_back();
    if (!n || !seen.insert(n.get()).second) continue;
    if (n->name().find("CheckpointFunction") != std::string::npos) found = true;
    for (const auto& e : n->next_edges()) stack.push_back(e.function);
  }
  REQUIRE(found);
  // The checkpointed forward computes the same logits as the plain one.
  torch::NoGradGuard ng;
  REQUIRE(at::equal(logits, m->forward(ids)));
}
