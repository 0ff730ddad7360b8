#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/blocks/attention.hpp"
#include "models/flops.hpp"
#include "models/llama.hpp"
#include "tests/models/tiny_configs.hpp"

using namespace strata::models;
using strata::testing::numel;
using strata::testing::tiny_config;

namespace {
ModelConfig llama(int64_t d, int64_t L, int64_t h, int64_t kv, int64_t V, int64_t mo, double mult, bool tie) {
  ModelConfig c;
  c.arch = "llama";
  c.d_model = d, c.n_layer = L, c.n_head = h, c.n_kv_head = kv, c.vocab_size = V, c.multiple_of = mo;
  c.ffn_dim_multiplier = mult, c.tie_embeddings = tie, c.bias = false;
  return c;
}
}  // namespace

TEST_CASE("Llama FFN hidden-size rule (spec invariant 2)", "[models][llama]") {
  REQUIRE(llama(4096, 1, 32, 0, 10, 256, 0, false).ffn_hidden() == 11008);
  REQUIRE(llama(4096, 1, 32, 0, 10, 1024, 1.3, false).ffn_hidden() == 14336);
  REQUIRE(llama(768, 1, 12, 0, 10, 32, 0, false).ffn_hidden() == 2048);
  REQUIRE(llama(2048, 1, 32, 0, 10, 256, 0, false).ffn_hidden() == 5632);
}

TEST_CASE("Llama parameter counts equal the spec's table and the instantiated model", "[models][llama][flops]") {
  REQUIRE(param_count(llama(4096, 32, 32, 32, 32000, 256, 0, false)) == 6738415616);   // Llama-2-7B
  REQUIRE(param_count(llama(4096, 32, 32, 8, 128256, 1024, 1.3, false)) == 8030261248);  // Llama-3-8B
  REQUIRE(param_count(llama(2048, 22, 32, 4, 32000, 256, 0, false)) == 1100048384);  // TinyLlama-1.1B
  REQUIRE(param_count(llama(768, 12, 12, 12, 32000, 32, 0, true)) == 109529856);     // llama2.c 110M, tied
  for (bool tie : {false, true})
    for (bool bias : {false, true}) {
      auto c = tiny_config("llama");
      c.tie_embeddings = tie, c.bias = bias;
      Llama m(c);
      REQUIRE(numel(m) == param_count(c));
    }
}

TEST_CASE("Llama FLOPs per token match the spec's reference values", "[models][llama][flops]") {
  auto l7 = llama(4096, 32, 32, 32, 32000, 256, 0, false);
  // The spec's N (6,607,077,376) leaves out the 65 RMSNorm gain vectors; Strata's N keeps norm
  // weights in (as the spec's GPT-2 N does), 266,240 more, 0.004%.
  REQUIRE(matmul_params(l7) == 6607077376 + 65 * 4096);
  CHECK(flops_per_token(l7, 4096) / 1e9 == Approx(46.08).epsilon(2e-4));
  CHECK(flops_per_token(llama(4096, 32, 32, 8, 128256, 1024, 1.3, false), 4096) / 1e9 == Approx(51.47).epsilon(2e-4));
  CHECK(flops_per_token(llama(4096, 32, 32, 8, 128256, 1024, 1.3, false), 8192) / 1e9 == Approx(57.9).epsilon(1e-3));
  CHECK(flops_per_token(llama(768, 12, 12, 12, 32000, 32, 0, true), 1024) / 1e9 == Approx(0.770).epsilon(1e-3));
}

TEST_CASE("Peak FLOP/s table by CUDA device name", "[models][flops]") {
  REQUIRE(peak_bf16_flops("NVIDIA A100-SXM4-80GB").value() == 312e12);
  REQUIRE(peak_bf16_flops("NVIDIA H100 80GB HBM3").value() == 989e12);
  REQUIRE(peak_bf16_flops("NVIDIA H200").value() == 989e12);
  REQUIRE(peak_bf16_flops("NVIDIA H100 PCIe").value() == 756e12);
  REQUIRE_FALSE(peak_bf16_flops("NVIDIA GeForce RTX 3090").has_value());
  REQUIRE_FALSE(peak_bf16_flops("").has_value());
}

TEST_CASE("RoPE preserves norms and q.k depends only on relative position (spec invariant 3)", "[models][rope]") {
  at::manual_seed(1);
  const int64_t hd = 16, T = 12;
  auto q = at::randn({1, 1, T, hd}, at::kDouble), k = at::randn({1, 1, T, hd}, at::kDouble);
  for (double theta : {1e4, 5e5}) {
    auto rq = apply_rope(q, theta), rk = apply_rope(k, theta);
    REQUIRE(at::allclose(rq.norm(2, -1), q.norm(2, -1), 1e-5, 1e-5));
    // The same vectors placed 7 positions later: every dot product unchanged.
    auto sq = apply_rope(q, theta, 7), sk = apply_rope(k, theta, 7);
    auto a = at::matmul(rq, rk.transpose(-1, -2)), b = at::matmul(sq, sk.transpose(-1, -2));
    REQUIRE(at::allclose(a, b, 1e-5, 1e-5));
    // ... while rotating only q changes them (the test can fail).
    REQUIRE_FALSE(at::allclose(at::matmul(sq, rk.transpose(-1, -2)), a, 1e-3, 1e-3));
  }
  // Meta layout: pair (0, 1) of a head at position 1 rotates by exactly 1 radian.
  auto x = at::zeros({1, 1, 2, 4}, at::kDouble);
  x.index_put_({0, 0, 1, 0}, 1.0);
  auto y = apply_rope(x, 1e4);
  REQUIRE(y[0][0][1][0].item<double>() == Approx(std::cos(1.0)).margin(1e-6));
  REQUIRE(y[0][0][1][1].item<double>() == Approx(std::sin(1.0)).margin(1e-6));
}

TEST_CASE("RoPE as x * cos + swap_pairs(x) * sin rounds exactly as the pairwise rotation, values and gradients", "[models][rope]") {
  // The textbook form (Meta's reference): per pair (x0, x1) -> (x0 c - x1 s, x0 s + x1 c).
  auto pairwise = [](const at::Tensor& x, double theta, int64_t offset) {
    const int64_t T = x.size(2), hd = x.size(3);
    auto opts = at::TensorOptions().dtype(at::kFloat);
    auto inv = at::pow(theta, -at::arange(0, hd, 2, opts) / static_cast<double>(hd));
    auto ang = at::outer(at::arange(offset, offset + T, opts), inv);
    auto cos = ang.cos(), sin = ang.sin();
    auto xf = x.reshape({x.size(0), x.size(1), T, hd / 2, 2});
    auto x0 = xf.select(-1, 0), x1 = xf.select(-1, 1);
    return at::stack({x0 * cos - x1 * sin, x0 * sin + x1 * cos}, -1).flatten(3);
  };
  at::manual_seed(4);
  for (int64_t offset : {0, 5}) {
    auto x1 = at::randn({2, 3, 9, 16}).set_requires_grad(true), x2 = x1.detach().clone().set_requires_grad(true);
    auto a = pairwise(x1, 1e4, offset), b = apply_rope(x2, 1e4, offset);
    CHECK(at::equal(a, b));
    auto up = at::randn(a.sizes());
    (a * up).sum().backward();
    (b * up).sum().backward();
    CHECK(at::equal(x1.grad(), x2.grad()));
  }
  // Tables for the wrong shape are refused.
  CHECK_THROWS_WITH(apply_rope(at::randn({1, 1, 4, 8}), rope_tables(5, 8, 1e4, 0, at::kCPU)),
                    Catch::Contains("tables for [5, 8]"));
}

TEST_CASE("GQA equals multi-head attention with duplicated K/V heads", "[models][attention]") {
  auto cfg = tiny_config("llama");
  cfg.n_kv_head = 2;  // 4 query heads share 2 K/V heads
  Attention gqa(cfg, true, true);
  auto mha_cfg = cfg;
  mha_cfg.n_kv_head = 0;
  Attention mha(mha_cfg, true, true);
  const int64_t hd = cfg.head_dim();
  torch::NoGradGuard ng;
  for (auto& p : gqa->parameters()) p.normal_(0, 0.2);  // a bare block's weights are uninitialised
  mha->wq->weight.copy_(gqa->wq->weight);
  mha->wo->weight.copy_(gqa->wo->weight);
  // K/V head j of the GQA layer serves query heads 2j and 2j+1.
  for (auto [src, dst] : {std::pair{gqa->wk, mha->wk}, std::pair{gqa->wv, mha->wv}})
    dst->weight.copy_(src->weight.view({2, 1, hd, 32}).expand({2, 2, hd, 32}).reshape({4 * hd, 32}));
  auto x = at::randn({2, 9, 32});
  REQUIRE(at::allclose(gqa(x), mha(x), 1e-6, 1e-6));
}

TEST_CASE("Llama is causal, and left padding with a mask leaves real tokens' logits unchanged", "[models][llama]") {
  at::manual_seed(2);
  Llama m(tiny_config("llama"));
  m.eval();
  torch::NoGradGuard ng;
  auto ids = at::randint(0, 50, {2, 10}, at::kLong);
  auto ids2 = ids.clone();
  ids2.narrow(1, 6, 4).random_(0, 50);
  auto a = m.forward(ids), b = m.forward(ids2);
  REQUIRE(at::allclose(a.narrow(1, 0, 6), b.narrow(1, 0, 6), 1e-6, 1e-6));
  REQUIRE_FALSE(at::allclose(a.narrow(1, 6, 4), b.narrow(1, 6, 4)));
  // Left-pad by 3 (RoPE is relative, so shifting the sequence keeps every real score).
  auto padded = at::cat({at::full({2, 3}, 7, at::kLong), ids}, 1);
  auto mask = at::cat({at::zeros({2, 3}, at::kBool), at::ones({2, 10}, at::kBool)}, 1);
  auto p = m.forward(padded, mask).narrow(1, 3, 10);
  REQUIRE(at::allclose(p, a, 1e-4, 1e-5));
  REQUIRE_FALSE(at::allclose(m.forward(padded).narrow(1, 3, 10), a, 1e-4, 1e-5));  // without the mask it differs
}

TEST_CASE("Llama's pipeline pieces compose to forward", "[models][llama]") {
  Llama m(tiny_config("llama"));
  torch::NoGradGuard ng;
  auto ids = at::randint(0, 50, {2, 8}, at::kLong);
  auto whole = m.forward(ids);
  auto parts = m.forward_head(m.forward_layers(m.forward_layers(m.forward_embed(ids), 0, 1), 1, 2));
  REQUIRE(at::equal(whole, parts));
}
