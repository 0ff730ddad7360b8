// specs/reweighting.md §4 invariants 1-5 and 7 on the weight math, the strategies and the registry.
#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "parallel/process_group.hpp"
#include "reweighting/per_sequence.hpp"
#include "reweighting/reweighter.hpp"
#include "reweighting/weights.hpp"

using namespace strata;
using namespace strata::reweighting;

namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

at::Tensor sample_losses(int64_t n, uint64_t seed) {
  at::manual_seed(seed);
  return at::rand({n}, at::kDouble) * 4.0 + 1.0;  // losses in [1, 5)
}

const std::vector<std::string> kAll = {"uniform", "linupper", "quadratic", "extremes"};

}  // namespace

TEST_CASE("the registry holds the four strategies and names them on a typo", "[reweighting]") {
  auto names = strategy_names();
  for (const auto& n : kAll) REQUIRE(std::find(names.begin(), names.end(), n) != names.end());
  REQUIRE(make_strategy("linupper")->name() == "linupper");
  REQUIRE_THROWS_WITH(make_strategy("linuper"), Catch::Matchers::Contains("unknown reweighting strategy 'linuper'") &&
                                                    Catch::Matchers::Contains("linupper"));
}

TEST_CASE("strategy shapes follow the spec's formulas", "[reweighting]") {
  auto x = at::linspace(-1.0, 1.0, 9, at::kDouble);
  for (double delta : {1.0, 0.5}) {
    auto xd = x * delta;
    REQUIRE(max_diff(make_strategy("linupper")->shape(xd, delta), at::minimum(xd + delta, at::full_like(xd, delta))) == 0);
    REQUIRE(max_diff(make_strategy("quadratic")->shape(xd, delta), 1.0 - xd * xd / (delta * delta)) < 1e-15);
    REQUIRE(max_diff(make_strategy("extremes")->shape(xd, delta), xd.abs()) == 0);
    REQUIRE(make_strategy("uniform")->shape(xd, delta).abs().max().item<double>() == 0);
  }
  // Spot values at delta = 1: LinUpper(-1) = 0, LinUpper(-0.5) = 0.5, LinUpper(0.5) = 1.
  auto v = make_strategy("linupper")->shape(at::tensor({-1.0, -0.5, 0.5}, at::kDouble), 1.0);
  REQUIRE(v[0].item<double>() == 0.0);
  REQUIRE(v[1].item<double>() == 0.5);
  REQUIRE(v[2].item<double>() == 1.0);
}

TEST_CASE("normalisation maps the losses onto [-delta, delta]", "[reweighting]") {
  auto l = at::tensor({2.0, 4.0, 3.0, 6.0}, at::kDouble);
  auto x = normalize_losses(l, 1.0);
  REQUIRE(max_diff(x, at::tensor({-1.0, 0.0, -0.5, 1.0}, at::kDouble)) < 1e-15);
  REQUIRE(max_diff(normalize_losses(l, 2.0), 2.0 * x) < 1e-15);
}

TEST_CASE("weights match the closed form softmax((f - max f) / r) by hand", "[reweighting]") {
  auto l = at::tensor({1.0, 2.0, 3.0}, at::kDouble);  // x = -1, 0, 1; LinUpper f = 0, 1, 1
  const double r = 0.4;
  auto w = compute_weights(l, *make_strategy("linupper"), r).w;
  const double e0 = std::exp(-1.0 / r), z = e0 + 2.0;
  REQUIRE(std::abs(w[0].item<double>() - e0 / z) < 1e-15);
  REQUIRE(std::abs(w[1].item<double>() - 1.0 / z) < 1e-15);
  REQUIRE(std::abs(w[2].item<double>() - 1.0 / z) < 1e-15);
}

TEST_CASE("invariant 2: weights lie on the simplex, with or without the max shift", "[reweighting]") {
  for (const auto& name : kAll) {
    for (double r : {0.1, 0.4, 1.0, 10.0}) {
      auto l = sample_losses(37, 3);
      auto s = make_strategy(name);
      auto w = compute_weights(l, *s, r).w;
      INFO(name << " r = " << r);
      REQUIRE(w.min().item<double>() > 0);
      REQUIRE(std::abs(w.sum().item<double>() - 1.0) < 1e-12);
      auto f = s->shape(normalize_losses(l, 1.0), 1.0);
      REQUIRE(max_diff(kl_weights(f, r, true), kl_weights(f, r, false)) < 1e-12);
    }
  }
}

TEST_CASE("invariant 1: a huge r (or the uniform strategy) gives 1/n and the plain mean loss", "[reweighting]") {
  const int64_t n = 16;
  auto l = sample_losses(n, 4);
  for (const auto& name : kAll) {
    auto w = compute_weights(l, *make_strategy(name), 1e9).w;
    REQUIRE(max_diff(w, at::full({n}, 1.0 / n, at::kDouble)) < 1e-9);
  }
  REQUIRE(max_diff(compute_weights(l, *make_strategy("uniform"), 0.4).w, at::full({n}, 1.0 / n, at::kDouble)) == 0);

  // Loss and gradient of the reweighted loss equal the mean cross-entropy (equal-length rows).
  at::manual_seed(7);
  auto logits = at::randn({4, 6, 11});
  auto targets = at::randint(0, 11, {4, 6}, at::kLong);
  auto a = logits.clone().requires_grad_(), b = logits.clone().requires_grad_();
  auto ref = at::cross_entropy_loss(a.view({-1, 11}), targets.view({-1}));
  ref.backward();
  for (const auto& [name, r] : std::vector<std::pair<std::string, double>>{{"uniform", 0.4}, {"linupper", 1e9}}) {
    ReweightConfig cfg;
    cfg.strategy = name;
    cfg.r = r;
    cfg.burn_in_steps = 0;
    Reweighter rw(cfg, parallel::make_single_rank_group("dp"));
    if (b.grad().defined()) b.grad().zero_();
    auto out = rw.loss(b, targets, 5);
    REQUIRE(out.weighted);
    out.loss.backward();
    INFO(name);
    REQUIRE(std::abs(out.loss.item<double>() - ref.item<double>()) < 1e-6);
    REQUIRE(max_diff(b.grad(), a.grad()) < 1e-6);
  }
}

TEST_CASE("invariant 3: LinUpper rises then is flat; Quadratic peaks and Extremes dips at mid-range", "[reweighting]") {
  auto l = at::linspace(1.0, 5.0, 41, at::kDouble);  // sorted; mid-range 3.0 is element 20
  const double mid = 3.0;
  auto wl = compute_weights(l, *make_strategy("linupper"), 0.4).w;
  for (int64_t i = 1; i < 41; ++i) REQUIRE(wl[i].item<double>() >= wl[i - 1].item<double>());
  auto upper = wl.masked_select(l >= mid);
  REQUIRE((upper - upper[0]).abs().max().item<double>() < 1e-15);
  REQUIRE(wl[0].item<double>() < wl[20].item<double>());

  auto wq = compute_weights(l, *make_strategy("quadratic"), 0.4).w;
  REQUIRE(max_diff(wq, wq.flip(0)) < 1e-15);  // symmetric about the mid-range
  REQUIRE(wq.argmax().item<int64_t>() == 20);
  auto we = compute_weights(l, *make_strategy("extremes"), 0.4).w;
  REQUIRE(max_diff(we, we.flip(0)) < 1e-15);
  REQUIRE(we.argmin().item<int64_t>() == 20);
  REQUIRE(we[0].item<double>() == Approx(we.max().item<double>()));

  // Unsorted losses: LinUpper's order follows the losses.
  auto u = sample_losses(25, 9);
  auto wu = compute_weights(u, *make_strategy("linupper"), 0.4).w;
  auto order = u.argsort();
  auto ws = wu.index_select(0, order);
  for (int64_t i = 1; i < 25; ++i) REQUIRE(ws[i].item<double>() >= ws[i - 1].item<double>() - 1e-15);
}

TEST_CASE("invariant 4: weights are invariant to a*l + c with a > 0", "[reweighting]") {
  auto l = sample_losses(19, 5);
  for (const auto& name : kAll) {
    auto w = compute_weights(l, *make_strategy(name), 0.4).w;
    for (auto [a, c] : std::vector<std::pair<double, double>>{{2.0, 0.0}, {0.5, 3.0}, {7.0, -2.0}}) {
      INFO(name << " a = " << a << " c = " << c);
      REQUIRE(max_diff(compute_weights(a * l + c, *make_strategy(name), 0.4).w, w) < 1e-12);
    }
  }
}

TEST_CASE("invariant 5: all-equal losses give uniform weights and no NaN", "[reweighting]") {
  for (const auto& name : kAll) {
    auto w = compute_weights(at::full({8}, 2.5, at::kDouble), *make_strategy(name), 0.4);
    REQUIRE(at::isfinite(w.w).all().item<bool>());
    REQUIRE(max_diff(w.w, at::full({8}, 1.0 / 8, at::kDouble)) < 1e-15);
    REQUIRE(std::abs(w.stats.entropy - std::log(8.0)) < 1e-12);
  }
  auto one = compute_weights(at::tensor({3.0}, at::kDouble), *make_strategy("linupper"), 0.4);
  REQUIRE(one.w.item<double>() == 1.0);
}

TEST_CASE("invariant 7: no gradient flows into the weights", "[reweighting]") {
  ReweightConfig cfg;
  cfg.strategy = "linupper";
  cfg.burn_in_steps = 0;
  Reweighter rw(cfg, parallel::make_single_rank_group("dp"));
  auto l = at::tensor({1.0f, 2.0f, 4.0f, 3.0f}).requires_grad_();
  SequenceLosses s{l, at::full({4}, 10.0f)};
  auto out = rw.loss(s, 0);
  REQUIRE(!out.weights.requires_grad());
  out.loss.backward();
  // d/dl_i (W sum w_j l_j) = w_i exactly: nothing from dw/dl.
  REQUIRE(max_diff(l.grad(), out.weights.to(at::kFloat)) < 1e-7);
}

TEST_CASE("stats: entropy, max weight and the loss range; the meter averages them", "[reweighting]") {
  auto l = at::tensor({1.0, 2.0, 3.0}, at::kDouble);
  auto w = compute_weights(l, *make_strategy("linupper"), 0.4);
  auto wd = w.w;
  REQUIRE(w.stats.entropy == Approx(-(wd * wd.log()).sum().item<double>()).epsilon(1e-12));
  REQUIRE(w.stats.max_weight == wd.max().item<double>());
  REQUIRE(w.stats.l_min == 1.0);
  REQUIRE(w.stats.l_max == 3.0);
  StatsMeter m;
  REQUIRE(m.take().empty());
  m.add({1.0, 0.5, 1.0, 3.0});
  m.add({2.0, 0.3, 2.0, 5.0});
  auto rows = m.take();
  REQUIRE(rows.size() == 4);
  REQUIRE(rows[0] == std::pair<std::string, double>{"reweight/entropy", 1.5});
  REQUIRE(rows[1].second == Approx(0.4));
  REQUIRE(rows[3] == std::pair<std::string, double>{"reweight/l_max", 4.0});
  REQUIRE(m.empty());
}

TEST_CASE("burn-in gives the plain mean; r follows its schedule as a function of the step", "[reweighting]") {
  ReweightConfig cfg;
  cfg.strategy = "linupper";
  cfg.burn_in_steps = 10;
  cfg.r = 0.4;
  cfg.r_start = 4.0;
  cfg.r_warmup_steps = 20;
  Reweighter rw(cfg, parallel::make_single_rank_group("dp"));
  REQUIRE(rw.r_at(0) == Approx(4.0));
  REQUIRE(rw.r_at(10) == Approx(4.0));
  REQUIRE(rw.r_at(20) == Approx(std::sqrt(4.0 * 0.4)));  // halfway, log-linear
  REQUIRE(rw.r_at(30) == 0.4);
  REQUIRE(rw.r_at(1000) == 0.4);
  Reweighter again(cfg, parallel::make_single_rank_group("dp"));  // a resumed run: same r at every step
  for (int64_t s = 0; s < 40; ++s) REQUIRE(again.r_at(s) == rw.r_at(s));

  auto l = at::tensor({1.0f, 2.0f, 4.0f}), n = at::tensor({4.0f, 2.0f, 2.0f});
  auto burn = rw.loss(SequenceLosses{l, n}, 9);
  REQUIRE(!burn.weighted);
  REQUIRE(burn.loss.item<double>() == Approx((4 * 1.0 + 2 * 2.0 + 2 * 4.0) / 8.0));
  REQUIRE(rw.loss(SequenceLosses{l, n}, 10).weighted);

  ReweightConfig bad = cfg;
  bad.strategy = "nope";
  REQUIRE_THROWS_WITH(Reweighter(bad, parallel::make_single_rank_group("dp")),
                      Catch::Matchers::Contains("reweighting.strategy"));
  bad = cfg;
  bad.r = 0;
  REQUIRE_THROWS_WITH(Reweighter(bad, parallel::make_single_rank_group("dp")), Catch::Matchers::Contains("reweighting.r"));
}

TEST_CASE("per-sequence losses: mean over valid targets, counts, and the token mean", "[reweighting]") {
  at::manual_seed(2);
  auto logits = at::randn({3, 5, 7});
  auto targets = at::randint(0, 7, {3, 5}, at::kLong);
  targets[1][2] = -100;
  targets[1][4] = -100;
  auto s = per_sequence_cross_entropy(logits, targets);
  REQUIRE(max_diff(s.tokens, at::tensor({5.0f, 3.0f, 5.0f})) == 0);
  for (int64_t i = 0; i < 3; ++i) {
    auto ref = at::cross_entropy_loss(logits[i], targets[i]);  // mean over row i's valid targets
    REQUIRE(std::abs(s.loss[i].item<double>() - ref.item<double>()) < 1e-6);
  }
  auto mean = at::cross_entropy_loss(logits.view({-1, 7}), targets.view({-1}));
  REQUIRE(std::abs(token_mean(s).item<double>() - mean.item<double>()) < 1e-6);
}
