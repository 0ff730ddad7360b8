#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/blocks/linear_cross_entropy.hpp"
#include "models/language_model.hpp"
#include "tests/models/tiny_configs.hpp"

using namespace strata::models;

namespace {
double rel(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).norm().item<double>() / b.to(at::kDouble).norm().item<double>();
}

at::Tensor plain_loss(const at::Tensor& x, const at::Tensor& w, const at::Tensor& t, int64_t ignore = -100) {
  auto logits = at::linear(x, w);
  return at::cross_entropy_loss(logits.reshape({-1, w.size(0)}), t.reshape({-1}), {}, at::Reduction::Mean, ignore);
}
}  // namespace

TEST_CASE("fused linear cross-entropy equals logits + cross_entropy: loss and both gradients", "[models][fused_ce]") {
  at::manual_seed(5);
  for (int64_t vocab : {97, 64, 130}) {
    for (int64_t rows : {0, 1, 7, 100}) {
      for (int64_t align : {1, 64}) {
        INFO("vocab " << vocab << " chunk_rows " << rows << " align " << align);
        auto x1 = at::randn({3, 11, 16}).set_requires_grad(true), x2 = x1.detach().clone().set_requires_grad(true);
        auto w1 = (0.5 * at::randn({vocab, 16})).set_requires_grad(true);
        auto w2 = w1.detach().clone().set_requires_grad(true);
        auto t = at::randint(0, vocab, {3, 11}, at::kLong);
        t.index_put_({0, at::indexing::Slice(0, 4)}, -100);  // ignored positions
        auto ref = plain_loss(x1, w1, t);
        LinearCrossEntropyOptions opt;
        opt.chunk_rows = rows;
        opt.align = align;
        auto fused = linear_cross_entropy(x2, w2, t, opt);
        REQUIRE(fused.dim() == 0);
        CHECK(std::abs(fused.item<double>() - ref.item<double>()) < 1e-5 * std::abs(ref.item<double>()));
        ref.backward();
        fused.backward();
        CHECK(rel(x2.grad(), x1.grad()) < 1e-5);
        CHECK(rel(w2.grad(), w1.grad()) < 1e-5);
        // Ignored rows get exactly zero feature gradient.
        CHECK(x2.grad().index({0, at::indexing::Slice(0, 4)}).abs().max().item<double>() == 0.0);
      }
    }
  }
}

TEST_CASE("fused linear cross-entropy: upstream scale, a weight also used elsewhere, no-grad value", "[models][fused_ce]") {
  at::manual_seed(6);
  const int64_t vocab = 40, dim = 8;
  auto w1 = at::randn({vocab, dim}).set_requires_grad(true), w2 = w1.detach().clone().set_requires_grad(true);
  auto ids = at::randint(0, vocab, {2, 9}, at::kLong), t = at::randint(0, vocab, {2, 9}, at::kLong);
  // A tied head: the same weight is the embedding table and the output projection.
  auto ref = 3.0 * plain_loss(at::tanh(at::embedding(w1, ids)), w1, t);
  LinearCrossEntropyOptions opt;
  opt.chunk_rows = 5;
  auto fused = 3.0 * linear_cross_entropy(at::tanh(at::embedding(w2, ids)), w2, t, opt);
  CHECK(std::abs(fused.item<double>() - ref.item<double>()) < 1e-5 * ref.item<double>());
  ref.backward();
  fused.backward();
  CHECK(rel(w2.grad(), w1.grad()) < 1e-5);

  // Only the weight needs a gradient (frozen features).
  auto feats = at::randn({18, dim});
  auto w3 = w1.detach().clone().set_requires_grad(true), w4 = w1.detach().clone().set_requires_grad(true);
  plain_loss(feats, w3, t).backward();
  linear_cross_entropy(feats, w4, t, opt).backward();
  CHECK(rel(w4.grad(), w3.grad()) < 1e-5);

  // Without gradients it computes the value only, the same value.
  at::Tensor grad_value = linear_cross_entropy(feats, w4, t, opt);
  at::NoGradGuard no_grad;
  auto value = linear_cross_entropy(feats, w4, t, opt);
  CHECK_FALSE(value.requires_grad());
  CHECK(value.item<double>() == Approx(grad_value.item<double>()).epsilon(1e-7));
  CHECK(value.item<double>() == Approx(plain_loss(feats, w4, t).item<double>()).epsilon(1e-6));
  // No valid target: NaN, as the unfused mean over zero elements.
  auto none = at::full({18}, -100, at::kLong);
  CHECK(std::isnan(linear_cross_entropy(feats, w4, none, opt).item<double>()));
  CHECK(std::isnan(plain_loss(feats, w4, none).item<double>()));
}

TEST_CASE("fused linear cross-entropy rejects mismatched shapes, naming them", "[models][fused_ce]") {
  auto w = at::randn({10, 4});
  CHECK_THROWS_WITH(linear_cross_entropy(at::randn({3, 5}), w, at::zeros({3}, at::kLong)),
                    Catch::Contains("features end in 5") && Catch::Contains("[10, 4]"));
  CHECK_THROWS_WITH(linear_cross_entropy(at::randn({3, 4}), w, at::zeros({2}, at::kLong)),
                    Catch::Contains("3 feature rows but 2 targets"));
  CHECK_THROWS_WITH(linear_cross_entropy(at::randn({3, 4}), w, at::zeros({3}, at::kInt)), Catch::Contains("int64"));
}

TEST_CASE("GPT and Llama heads as (features, weight) give the model's own loss and gradients", "[models][fused_ce]") {
  for (bool tie : {true, false}) {
    for (const char* arch : {"gpt", "llama"}) {
      INFO(arch << " tie " << tie);
      auto cfg = strata::testing::tiny_config(arch);
      cfg.tie_embeddings = tie;
      cfg.dropout = 0.0;
      auto a = make_model(cfg), b = make_model(cfg);
      a->train();
      b->train();
      auto ids = at::randint(0, cfg.vocab_size, {2, 12}, at::kLong), t = at::randint(0, cfg.vocab_size, {2, 12}, at::kLong);
      auto logits = a->forward(ids);
      auto ref = at::cross_entropy_loss(logits.view({-1, cfg.vocab_size}), t.view({-1}));
      auto head = b->head_weight();
      REQUIRE(head.has_value());
      auto feats = b->head_features(b->forward_layers(b->forward_embed(ids), 0, cfg.n_layer));
      LinearCrossEntropyOptions opt;
      opt.chunk_rows = 7;
      auto fused = linear_cross_entropy(feats, *head, t, opt);
      CHECK(fused.item<double>() == Approx(ref.item<double>()).epsilon(1e-6));
      ref.backward();
      fused.backward();
      auto pa = a->named_parameters(), pb = b->named_parameters();
      for (const auto& kv : pa) {  // absolute floor: the key bias's gradient is zero up to rounding
        INFO(kv.key());
        const auto& ga = kv.value().grad();
        CHECK((pb[kv.key()].grad() - ga).norm().item<double>() <= 1e-5 * ga.norm().item<double>() + 1e-7);
      }
    }
  }
}
