#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/bert.hpp"
#include "models/flops.hpp"
#include "tests/models/tiny_configs.hpp"

using namespace strata::models;
using strata::testing::numel;
using strata::testing::tiny_config;

namespace {
ModelConfig bert(int64_t L, int64_t d, int64_t h) {
  ModelConfig c;
  c.arch = "bert";
  c.n_layer = L, c.d_model = d, c.n_head = h;
  c.vocab_size = 30522, c.max_seq_len = 512, c.norm_eps = 1e-12;
  return c;
}
}  // namespace

TEST_CASE("BERT parameter counts: BertModel base with pooler is 109,482,240", "[models][bert][flops]") {
  auto base = bert(12, 768, 12);
  // Strata's BERT is BertForMaskedLM (no pooler); BertModel = encoder + pooler.
  REQUIRE(param_count(base) - bert_mlm_head_params(base) + bert_pooler_params(base) == 109482240);
  REQUIRE(bert_mlm_head_params(base) == 768 * 768 + 768 + 2 * 768 + 30522);
  auto large = bert(24, 1024, 16);
  const int64_t large_model = param_count(large) - bert_mlm_head_params(large) + bert_pooler_params(large);
  CHECK(large_model == 335141888);  // "~335M" in the spec
  auto c = tiny_config("bert");
  Bert m(c);
  REQUIRE(numel(m) == param_count(c));
}

TEST_CASE("BERT attention is bidirectional", "[models][bert]") {
  Bert m(tiny_config("bert"));
  m.eval();
  torch::NoGradGuard ng;
  auto ids = at::randint(0, 50, {2, 10}, at::kLong);
  auto ids2 = ids.clone();
  ids2.narrow(1, 8, 2).random_(0, 50);
  // A later token changes the logits of the first ones.
  REQUIRE_FALSE(at::allclose(m.forward(ids).narrow(1, 0, 4), m.forward(ids2).narrow(1, 0, 4), 1e-4, 1e-4));
}

TEST_CASE("BERT: padding with a mask does not change real tokens' logits", "[models][bert]") {
  at::manual_seed(3);
  Bert m(tiny_config("bert"));
  m.eval();
  torch::NoGradGuard ng;
  auto ids = at::randint(1, 50, {1, 7}, at::kLong);
  auto alone = m.forward(ids);
  // The same sequence in a batch padded to 12 with arbitrary pad ids.
  auto padded = at::cat({ids, at::randint(0, 50, {1, 5}, at::kLong)}, 1);
  auto mask = at::cat({at::ones({1, 7}, at::kBool), at::zeros({1, 5}, at::kBool)}, 1);
  auto out = m.forward(padded, mask).narrow(1, 0, 7);
  REQUIRE(at::allclose(out, alone, 1e-5, 1e-5));
  REQUIRE_FALSE(at::allclose(m.forward(padded).narrow(1, 0, 7), alone, 1e-5, 1e-5));
}

TEST_CASE("BERT token types default to 0", "[models][bert]") {
  Bert m(tiny_config("bert"));
  m.eval();
  torch::NoGradGuard ng;
  auto ids = at::randint(0, 50, {2, 6}, at::kLong);
  auto zeros = at::zeros({2, 6}, at::kLong);
  REQUIRE(at::allclose(m.forward(ids), m.forward_typed(ids, std::nullopt, zeros), 1e-6, 1e-6));
  REQUIRE_FALSE(at::allclose(m.forward(ids), m.forward_typed(ids, std::nullopt, at::ones({2, 6}, at::kLong)), 1e-4, 1e-4));
}

TEST_CASE("BERT MLM loss counts only labelled positions (label -100 is ignored)", "[models][bert]") {
  Bert m(tiny_config("bert"));
  auto ids = at::randint(0, 50, {2, 8}, at::kLong);
  auto labels = at::full({2, 8}, -100, at::kLong);
  labels.index_put_({0, 2}, 5);
  labels.index_put_({1, 6}, 9);
  auto logits = m.forward(ids).view({-1, 50});
  auto loss = at::cross_entropy_loss(logits, labels.view({-1}));
  auto lp = at::log_softmax(logits, -1);
  auto manual = -(lp[2][5] + lp[8 + 6][9]) / 2;
  REQUIRE(loss.item<double>() == Approx(manual.item<double>()).epsilon(1e-6));
  loss.backward();
  // d loss / d bias = mean over the two labelled rows of (softmax - one-hot): unlabelled rows add nothing.
  auto sm = at::softmax(logits.detach(), -1);
  auto expect = (sm[2] + sm[14]) / 2;
  expect[5] -= 0.5;
  expect[9] -= 0.5;
  REQUIRE(at::allclose(m.mlm_bias.grad(), expect, 1e-5, 1e-6));
}

TEST_CASE("BERT init: truncated normal within 2 std, zero biases, unit LayerNorm gains", "[models][bert]") {
  auto c = tiny_config("bert");
  c.d_model = 128;
  Bert m(c);
  auto named = m.named_parameters();
  auto w = named["blocks.0.attn.wq.weight"];
  REQUIRE(w.abs().max().item<double>() <= 2 * 0.02 + 1e-7);
  CHECK(w.std().item<double>() == Approx(0.02 * 0.88).epsilon(0.05));  // std of N(0,1) truncated at 2 = 0.88
  // BERT does not scale residual projections.
  CHECK(named["blocks.0.attn.wo.weight"].std().item<double>() == Approx(0.02 * 0.88).epsilon(0.05));
  REQUIRE(named["mlm_bias"].eq(0).all().item<bool>());
  REQUIRE(named["emb_norm.weight"].eq(1).all().item<bool>());
}
