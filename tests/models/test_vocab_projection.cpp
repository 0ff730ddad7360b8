#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/blocks/vocab_projection.hpp"

using namespace strata::models;

namespace {
double rel(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).norm().item<double>() / b.to(at::kDouble).norm().item<double>();
}
}  // namespace

TEST_CASE("vocab projection padded for the GEMM equals the plain product, values and gradients", "[models][vocab]") {
  at::manual_seed(3);
  for (int64_t vocab : {97, 50, 64, 130}) {
    INFO("vocab " << vocab);
    auto x1 = at::randn({3, 5, 16}).set_requires_grad(true), x2 = x1.detach().clone().set_requires_grad(true);
    auto w1 = at::randn({vocab, 16}).set_requires_grad(true), w2 = w1.detach().clone().set_requires_grad(true);
    auto plain = at::linear(x1, w1);
    auto padded = vocab_projection(x2, w2, 64);
    REQUIRE(padded.sizes().vec() == std::vector<int64_t>{3, 5, vocab});
    CHECK(rel(padded, plain) < 1e-6);
    auto up = at::randn({3, 5, vocab});
    (plain * up).sum().backward();
    (padded * up).sum().backward();
    REQUIRE(w2.grad().sizes() == w1.grad().sizes());
    CHECK(rel(w2.grad(), w1.grad()) < 1e-6);
    CHECK(rel(x2.grad(), x1.grad()) < 1e-6);
  }
  // align 1 is the plain product, bitwise.
  auto x = at::randn({2, 8}), w = at::randn({11, 8});
  CHECK(at::equal(vocab_projection(x, w, 1), at::linear(x, w)));
  CHECK(vocab_align_for(x) == 1);
}
