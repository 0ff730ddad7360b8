#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/flops.hpp"
#include "models/gpt.hpp"

using namespace strata::models;

namespace {
ModelConfig tiny() {
  ModelConfig c;
  c.n_layer = 2;
  c.d_model = 32;
  c.n_head = 4;
  c.vocab_size = 50;
  c.max_seq_len = 16;
  return c;
}
int64_t numel(LanguageModel& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}
}  // namespace

TEST_CASE("GPT output shape", "[models][gpt]") {
  Gpt m(tiny());
  auto ids = at::randint(0, 50, {3, 10}, at::kLong);
  auto y = m.forward(ids);
  REQUIRE(y.sizes().vec() == std::vector<int64_t>{3, 10, 50});
}

TEST_CASE("GPT is causal: future tokens do not change earlier logits", "[models][gpt]") {
  Gpt m(tiny());
  m.eval();
  torch::NoGradGuard ng;
  auto ids = at::randint(0, 50, {2, 12}, at::kLong);
  auto ids2 = ids.clone();
  ids2.narrow(1, 7, 5).random_(0, 50);
  auto a = m.forward(ids), b = m.forward(ids2);
  REQUIRE(at::allclose(a.narrow(1, 0, 7), b.narrow(1, 0, 7), 1e-6, 1e-6));
  REQUIRE_FALSE(at::allclose(a.narrow(1, 7, 5), b.narrow(1, 7, 5)));
}

TEST_CASE("GPT parameter count equals the formula", "[models][gpt][flops]") {
  auto c = tiny();
  Gpt m(c);
  REQUIRE(numel(m) == param_count(c));
  c.tie_embeddings = false;
  Gpt u(c);
  REQUIRE(numel(u) == param_count(c));
  // specs/models.md table: GPT-2 small/medium/large/XL with V = 50257.
  ModelConfig g;
  g.vocab_size = 50257;
  g.max_seq_len = 1024;
  auto count = [&](int64_t L, int64_t d, int64_t h) {
    g.n_layer = L, g.d_model = d, g.n_head = h;
    return param_count(g);
  };
  REQUIRE(count(12, 768, 12) == 124439808);
  REQUIRE(count(24, 1024, 16) == 354823168);
  REQUIRE(count(36, 1280, 20) == 774030080);
  REQUIRE(count(48, 1600, 25) == 1557611200);
  // closed form 12Ld^2 + 13Ld + (V + 1024)d + 2d
  int64_t L = 12, d = 768;
  REQUIRE(count(12, 768, 12) == 12 * L * d * d + 13 * L * d + (50257 + 1024) * d + 2 * d);
}

TEST_CASE("FLOPs per token for GPT-2 small match the spec", "[models][flops]") {
  ModelConfig g;
  g.vocab_size = 50257;
  g.max_seq_len = 1024;
  g.n_layer = 12, g.d_model = 768, g.n_head = 12;
  REQUIRE(matmul_params(g) == 123653376);
  REQUIRE(flops_per_token(g, 1024) == Approx(855166464.0).epsilon(1e-12));
  // Megatron closed form agrees to < 0.1%.
  double B = 1, s = 1024, h = 768, V = 50257, Ls = 12;
  double megatron = 72 * B * s * Ls * h * h * (1 + s / (6 * h) + V / (12 * Ls * h)) / s;
  REQUIRE(std::abs(megatron - flops_per_token(g, 1024)) / megatron < 1e-3);
}

TEST_CASE("GPT init: residual projections are scaled by 1/sqrt(2L), deterministic in the seed", "[models][gpt]") {
  ModelConfig c = tiny();
  c.d_model = 256;
  c.n_layer = 8;
  Gpt a(c), b(c);
  a.init_weights(3);
  b.init_weights(3);
  for (size_t i = 0; i < a.parameters().size(); ++i) REQUIRE(at::equal(a.parameters()[i], b.parameters()[i]));
  auto named = a.named_parameters();
  double std_wo = named["blocks.0.attn.wo.weight"].std().item<double>();
  double std_wq = named["blocks.0.attn.wq.weight"].std().item<double>();
  CHECK(std_wq == Approx(0.02).epsilon(0.05));
  CHECK(std_wo == Approx(0.02 / std::sqrt(16.0)).epsilon(0.05));
  REQUIRE(named["blocks.0.norm1.weight"].eq(1).all().item<bool>());
  REQUIRE(named["blocks.0.attn.wq.bias"].eq(0).all().item<bool>());
}
