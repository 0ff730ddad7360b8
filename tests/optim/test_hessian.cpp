// Curvature estimators (specs/sophia.md §4 items 4-5): GNB by enumeration over labels on a
// softmax-linear model, the Gumbel-max label sampler against softmax (and its noise), Hutchinson by enumeration over all
// Rademacher probes on a quadratic, and the refresh drivers.
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "optim/hessian.hpp"
#include "optim/sophia.hpp"

using namespace strata::optim;

namespace {

std::vector<ParamGroup> one_group(at::Tensor p) {
  ParamGroup g;
  g.names = {"w"};
  g.params = {p};
  return {g};
}

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

}  // namespace

TEST_CASE("GNB by enumeration: E over sampled labels of B*grad(mean CE)^2 is the Gauss-Newton diagonal",
          "[optim][hessian][gnb]") {
  // z_b = W x_b, C classes, B positions; labels yhat_b ~ softmax(z_b) independently.
  at::manual_seed(6);
  const int64_t C = 3, D = 4, B = 3;
  auto W = (at::randn({C, D}, at::kDouble) * 0.7).set_requires_grad(true);
  auto X = at::randn({B, D}, at::kDouble);
  auto P = at::softmax(at::matmul(X, W.detach().t()), -1);  // [B, C]

  // Expectation by enumerating all C^B label vectors, weighted by their probability.
  auto expect = at::zeros({C, D}, at::kDouble);
  auto mean_grad = at::zeros({C, D}, at::kDouble);
  for (int64_t code = 0; code < C * C * C; ++code) {
    std::vector<int64_t> y = {code % C, (code / C) % C, code / (C * C)};
    double weight = 1;
    for (int64_t b = 0; b < B; ++b) weight *= P[b][y[b]].item<double>();
    auto loss = at::cross_entropy_loss(at::matmul(X, W.t()), at::tensor(y, at::kLong));  // mean over B
    auto g = torch::autograd::grad({loss}, {W})[0];
    expect += weight * B * g.square();
    mean_grad += weight * g;
  }
  // diag(J^T (diag p - p p^T) J) averaged over positions: for W_ij, x_bj^2 * (p_bi - p_bi^2).
  auto gn = at::zeros({C, D}, at::kDouble);
  for (int64_t b = 0; b < B; ++b) gn += at::outer(P[b] - P[b].square(), X[b].square());
  gn /= static_cast<double>(B);
  REQUIRE(at::allclose(expect, gn, 0, 1e-6));
  REQUIRE(at::allclose(mean_grad, at::zeros_like(mean_grad), 0, 1e-12));  // Bartlett: E[grad] = 0
  REQUIRE(gn.min().item<double>() >= 0.0);
}

TEST_CASE("sample_labels draws from softmax(logits) by Gumbel-max, deterministically per (seed, position)",
          "[optim][hessian][gnb]") {
  auto logits = at::tensor({2.0f, 0.0f, -1.0f, 1.0f, -3.0f});
  const int64_t N = 200000;
  auto rows = logits.expand({N, 5}).contiguous();
  auto y = sample_labels(rows, /*seed=*/7, /*first_row=*/0);
  REQUIRE(y.sizes() == at::IntArrayRef({N}));
  auto freq = at::bincount(y, {}, 5).to(at::kDouble) / static_cast<double>(N);
  auto p = at::softmax(logits.to(at::kDouble), 0);
  auto sigma = (p * (1 - p) / static_cast<double>(N)).sqrt();
  REQUIRE(((freq - p).abs() <= 5 * sigma).all().item<bool>());
  // A label is a function of (seed, global position): any split of the rows gives the same labels,
  // another seed others.
  REQUIRE(at::equal(sample_labels(rows, 7, 0), y));
  auto tail = sample_labels(rows.narrow(0, 1000, 3000), 7, 1000);
  REQUIRE(at::equal(tail, y.narrow(0, 1000, 3000)));
  REQUIRE(!at::equal(sample_labels(rows, 8, 0), y));
  // The seed comes from the refresh generator: equal states draw equal seeds.
  auto g1 = generator(3), g2 = generator(3);
  REQUIRE(draw_refresh_seed(g1) == draw_refresh_seed(g2));
  // Sharp logits: the sampler never leaves the support.
  auto sharp = at::tensor({0.0f, 80.0f, -80.0f}).expand({1000, 3}).contiguous();
  REQUIRE((sample_labels(sharp, 5, 0) == 1).all().item<bool>());
  // Batched shapes [B, T, V] give [B, T] labels numbered row-major.
  auto bt = at::randn({2, 3, 5});
  REQUIRE(at::equal(sample_labels(bt, 9, 4).reshape({-1}), sample_labels(bt.reshape({6, 5}), 9, 4)));
  // sampled_label_loss is the mean CE against those samples and carries a gradient.
  auto l = logits.expand({4, 5}).contiguous().set_requires_grad(true);
  auto loss = sampled_label_loss(l, 9, 0);
  auto labels = sample_labels(l, 9, 0);
  REQUIRE(loss.item<double>() == Approx(at::cross_entropy_loss(l.detach(), labels).item<double>()));
  REQUIRE(loss.requires_grad());
  // GnbLabels numbers micro-batch a of dp rank r as rows (a * dp + r) * rows of the global batch.
  GnbLabels two{11, 1, 2, nullptr};
  auto x = at::randn({4, 5});
  REQUIRE(two.loss(x, 1).item<double>() ==
          Approx(at::cross_entropy_loss(x, sample_labels(x, 11, (1 * 2 + 1) * 4)).item<double>()));
}

TEST_CASE("gumbel_noise is standard Gumbel and independent of how the vocabulary is split", "[optim][hessian][gnb]") {
  auto g = gumbel_noise(123, 0, 2000, 0, 100, 100, at::kCPU);
  REQUIRE(g.sizes() == at::IntArrayRef({2000, 100}));
  // Gumbel(0, 1): mean = Euler-Mascheroni 0.5772, variance pi^2 / 6.
  REQUIRE(g.mean().item<double>() == Approx(0.5772).margin(0.01));
  REQUIRE(g.var().item<double>() == Approx(M_PI * M_PI / 6).epsilon(0.02));
  REQUIRE(at::equal(gumbel_noise(123, 500, 10, 30, 40, 100, at::kCPU), g.narrow(0, 500, 10).narrow(1, 30, 40)));
  // Neighbouring counters are not correlated.
  auto c = at::corrcoef(at::stack({g.narrow(1, 0, 99).reshape({-1}), g.narrow(1, 1, 99).reshape({-1})}));
  REQUIRE(std::abs(c[0][1].item<double>()) < 0.01);
}

TEST_CASE("Hutchinson by enumeration over all 2^d Rademacher probes recovers diag(A) on a quadratic",
          "[optim][hessian][hutchinson]") {
  at::manual_seed(8);
  const int64_t d = 7;
  auto M = at::randn({d, d}, at::kDouble);
  auto A = M + M.t();  // symmetric, indefinite
  auto theta = at::randn({d}, at::kDouble).set_requires_grad(true);
  auto sum = at::zeros({d}, at::kDouble);
  for (int64_t code = 0; code < (int64_t{1} << d); ++code) {
    auto u = at::empty({d}, at::kDouble);
    for (int64_t i = 0; i < d; ++i) u[i] = (code >> i) & 1 ? 1.0 : -1.0;
    auto loss = 0.5 * at::dot(theta, at::mv(A, theta));
    auto hv = hessian_vector_product(loss, {theta}, {u});
    REQUIRE(at::allclose(hv[0], at::mv(A, u), 0, 1e-12));
    sum += u * hv[0];
  }
  REQUIRE(at::allclose(sum / static_cast<double>(int64_t{1} << d), at::diagonal(A), 0, 1e-12));
}

TEST_CASE("Hutchinson probes are Rademacher or Gaussian, reproducible, shaped like the parameters",
          "[optim][hessian][hutchinson]") {
  auto a = at::zeros({50, 4}), b = at::zeros({30}, at::kDouble);
  auto g1 = generator(3), g2 = generator(3);
  auto r1 = hutchinson_probes({a, b}, g1, "rademacher"), r2 = hutchinson_probes({a, b}, g2, "rademacher");
  REQUIRE(r1[0].sizes() == a.sizes());
  REQUIRE(r1[1].scalar_type() == at::kDouble);
  REQUIRE((r1[0].abs() == 1).all().item<bool>());
  REQUIRE(r1[0].mean().abs().item<double>() < 0.3);
  REQUIRE(at::equal(r1[0], r2[0]));
  auto n = hutchinson_probes({at::zeros({20000})}, g1, "gaussian")[0];
  REQUIRE(n.mean().item<double>() == Approx(0.0).margin(0.05));
  REQUIRE(n.std().item<double>() == Approx(1.0).epsilon(0.05));
  REQUIRE_THROWS(hutchinson_probes({a}, g1, "uniform"));
}

TEST_CASE("refresh drivers: GNB squares the clipped gradient, Hutchinson folds in u*(H u)", "[optim][hessian]") {
  const double b2 = 0.9;
  // GNB on logits = w (one position, 4 classes): grad of CE = softmax(w) - onehot(yhat).
  auto w = at::tensor({0.5f, -0.2f, 0.1f, 0.0f}).set_requires_grad(true);
  Sophia opt(one_group(w), 0.9, b2, 0.04, 1, Sophia::Estimator::Gnb);
  auto gen = generator(11), replay = generator(11);
  double loss = refresh_gnb(opt, {w}, 1, [&](int64_t) { return w.view({1, 4}); }, gen, /*grad_clip=*/0.0);
  auto y = sample_labels(w.detach().view({1, 4}), draw_refresh_seed(replay), 0).item<int64_t>();
  auto g = at::softmax(w.detach(), 0);
  g[y] -= 1.0;
  REQUIRE(loss == Approx(-std::log(at::softmax(w.detach(), 0)[y].item<double>())));
  REQUIRE(at::allclose(opt.hessian(0, 0), (1 - b2) * g.square(), 0, 1e-7));
  REQUIRE(at::equal(w.grad(), at::zeros({4})));  // gradients zeroed afterwards
  // With clipping to a tiny norm the squared gradient shrinks by (clip/norm)^2.
  Sophia clipped(one_group(w), 0.9, b2, 0.04, 1, Sophia::Estimator::Gnb);
  auto gen2 = generator(11);
  refresh_gnb(clipped, {w}, 1, [&](int64_t) { return w.view({1, 4}); }, gen2, /*grad_clip=*/1e-3);
  REQUIRE(at::allclose(clipped.hessian(0, 0).sum(), at::tensor(float((1 - b2) * 1e-6)), 1e-3, 0));

  // Hutchinson on 0.5 theta^T A theta with two micro-batches of the same loss: hc = (1-b2) u*(A u).
  auto A = at::tensor({2.0f, 1.0f, 1.0f, 3.0f}).view({2, 2});
  auto theta = at::tensor({0.3f, -0.7f}).set_requires_grad(true);
  Sophia h(one_group(theta), 0.9, b2, 0.01, 1, Sophia::Estimator::Hutchinson);
  auto hg = generator(12), hg_replay = generator(12);
  refresh_hutchinson(h, {theta}, 2, [&](int64_t) { return 0.5 * at::dot(theta, at::mv(A, theta)); }, hg, "rademacher");
  auto u = hutchinson_probes({theta}, hg_replay, "rademacher")[0];
  REQUIRE(at::allclose(h.hessian(0, 0), (1 - b2) * u * at::mv(A, u), 0, 1e-6));
}
