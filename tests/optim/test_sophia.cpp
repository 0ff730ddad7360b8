// Sophia's update rule, cold start, Newton regime, cadence/EMA closed form, state, sharding
// (specs/sophia.md §4 items 1-3 and 6).
#include <cmath>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "optim/sophia.hpp"
#include "optim/slices.hpp"

using namespace strata::optim;
using Catch::Matchers::Contains;

namespace {

std::vector<ParamGroup> one_group(at::Tensor p, double wd, const std::string& name = "w") {
  ParamGroup g;
  g.names = {name};
  g.params = {p};
  g.weight_decay = wd;
  return {g};
}

// Sets Sophia's m and hc for its single parameter "w" (steps/refreshes counters zero).
void set_state(Sophia& opt, const at::Tensor& m, const at::Tensor& hc, const std::string& name = "w") {
  opt.load_state({{"sophia.m." + name, m}, {"sophia.hc." + name, hc}, {"sophia.steps", at::tensor({int64_t{0}})},
                  {"sophia.refreshes", at::tensor({int64_t{0}})}});
}

}  // namespace

TEST_CASE("Sophia step equals the code-form formula and |delta| <= lr*(1 + wd*|theta|)", "[optim][sophia]") {
  at::manual_seed(1);
  const double lr = 3e-2, b1 = 0.965, b2 = 0.99, rho = 0.05, bs = 512, wd = 0.2;
  auto theta0 = at::randn({40, 30});
  auto m0 = at::randn({40, 30}) * 0.01;
  // hc spanning many magnitudes so both clipped and unclipped coordinates occur.
  auto hc0 = at::exp(at::randn({40, 30}) * 3.0) * 1e-3;
  auto g = at::randn({40, 30});
  auto p = theta0.clone().set_requires_grad(true);
  Sophia opt(one_group(p, wd), b1, b2, rho, 10, Sophia::Estimator::Gnb);
  opt.set_tokens_per_step(bs);
  set_state(opt, m0, hc0);
  p.mutable_grad() = g.clone();
  opt.step(lr);

  auto th = theta0.to(at::kDouble), md = m0.to(at::kDouble), hd = hc0.to(at::kDouble), gd = g.to(at::kDouble);
  auto m_new = b1 * md + (1 - b1) * gd;
  auto ratio = at::clamp_max(m_new.abs() / (rho * bs * hd + 1e-15), 1.0);
  auto expected = th * (1 - lr * wd) - lr * m_new.sign() * ratio;
  REQUIRE(at::allclose(p.detach().to(at::kDouble), expected, 0, 1e-6));
  REQUIRE(at::allclose(opt.momentum(0, 0).to(at::kDouble), m_new, 0, 1e-7));
  auto delta = (p.detach().to(at::kDouble) - th).abs();
  REQUIRE((delta <= lr * (1 + wd * th.abs()) + 1e-7).all().item<bool>());
  // The case is meaningful: some coordinates saturate, some do not.
  const double clipped = (ratio == 1.0).to(at::kDouble).mean().item<double>();
  REQUIRE(clipped > 0.05);
  REQUIRE(clipped < 0.95);
}

TEST_CASE("Sophia cold start (hc = 0, wd = 0) is sign-momentum: every coordinate moves by lr", "[optim][sophia]") {
  at::manual_seed(2);
  auto g = at::randn({200});
  g = g + g.sign() * 0.1;  // keep |m| well above the 1e-15 floor
  auto p = at::randn({200}).set_requires_grad(true);
  auto before = p.detach().clone();
  Sophia opt(one_group(p, 0.0), 0.965, 0.99, 0.04, 10, Sophia::Estimator::Gnb);
  opt.set_tokens_per_step(1024);
  p.mutable_grad() = g;
  const double lr = 1e-3;
  opt.step(lr);
  REQUIRE(at::allclose(before - p.detach(), static_cast<float>(lr) * g.sign(), 0, 1e-7));
  REQUIRE(at::equal((before - p.detach()).sign(), g.sign()));
}

TEST_CASE("Sophia unclipped regime is the Newton-like step -lr*m/(rho*bs*hc + 1e-15)", "[optim][sophia]") {
  at::manual_seed(3);
  const double lr = 0.1, b1 = 0.9, rho = 0.05, bs = 64;
  auto m0 = at::randn({50}) * 1e-3;
  auto g = at::randn({50}) * 1e-3;
  auto hc = at::rand({50}) + 1.0;  // rho*bs*hc in [3.2, 6.4] >> |m|
  auto p = at::randn({50}).set_requires_grad(true);
  auto before = p.detach().to(at::kDouble);
  Sophia opt(one_group(p, 0.0), b1, 0.99, rho, 10, Sophia::Estimator::Gnb);
  opt.set_tokens_per_step(bs);
  set_state(opt, m0, hc);
  p.mutable_grad() = g;
  opt.step(lr);
  auto m_new = b1 * m0.to(at::kDouble) + (1 - b1) * g.to(at::kDouble);
  REQUIRE((m_new.abs() < rho * bs * hc.to(at::kDouble)).all().item<bool>());
  auto expected = before - lr * m_new / (rho * bs * hc.to(at::kDouble) + 1e-15);
  REQUIRE(at::allclose(p.detach().to(at::kDouble), expected, 1e-6, 1e-9));
  REQUIRE(opt.metrics()[0].second == 1.0);  // win_rate: nothing clipped
}

TEST_CASE("Sophia cadence with k = 10: floor(N/10) refreshes, closed-form EMAs, no bias correction", "[optim][sophia]") {
  at::manual_seed(4);
  const double b1 = 0.965, b2 = 0.99;
  const int64_t k = 10, N = 37;
  auto p = at::randn({16}).set_requires_grad(true);
  Sophia opt(one_group(p, 0.0), b1, b2, 0.04, k, Sophia::Estimator::Gnb);
  opt.set_tokens_per_step(100);
  std::vector<at::Tensor> grads, hess_grads;
  for (int64_t s = 0; s < N; ++s) {
    grads.push_back(at::randn({16}));
    p.mutable_grad() = grads.back().clone();
    opt.step(1e-4);
    if (hessian_refresh_due(s, opt.hessian_interval())) {
      hess_grads.push_back(at::randn({16}));
      p.mutable_grad() = hess_grads.back().clone();
      opt.update_hessian();
    }
  }
  REQUIRE(opt.refreshes() == N / k);
  REQUIRE(hess_grads.size() == static_cast<size_t>(N / k));
  REQUIRE(opt.steps() == N);
  auto m = at::zeros({16}, at::kDouble), hc = at::zeros({16}, at::kDouble);
  for (int64_t s = 0; s < N; ++s) m += (1 - b1) * std::pow(b1, N - 1 - s) * grads[s].to(at::kDouble);
  const auto R = static_cast<int64_t>(hess_grads.size());
  for (int64_t j = 0; j < R; ++j) hc += (1 - b2) * std::pow(b2, R - 1 - j) * hess_grads[j].to(at::kDouble).square();
  REQUIRE(at::allclose(opt.momentum(0, 0).to(at::kDouble), m, 1e-5, 1e-7));
  REQUIRE(at::allclose(opt.hessian(0, 0).to(at::kDouble), hc, 1e-5, 1e-9));
  // Due exactly at steps 9, 19, 29 (0-indexed).
  REQUIRE(hessian_refresh_due(9, 10));
  REQUIRE_FALSE(hessian_refresh_due(10, 10));
  REQUIRE_FALSE(hessian_refresh_due(0, 10));
}

TEST_CASE("Sophia-H denominator uses max(hc, 0) without bs; negative curvature saturates", "[optim][sophia]") {
  auto p = at::zeros({3}).set_requires_grad(true);
  Sophia opt(one_group(p, 0.0), 0.0, 0.5, 0.5, 1, Sophia::Estimator::Hutchinson);
  set_state(opt, at::zeros({3}), at::tensor({4.0f, -4.0f, 0.0f}));
  p.mutable_grad() = at::tensor({0.5f, 0.5f, -0.5f});  // b1 = 0: m = g
  opt.step(1.0);
  // ratio = |m| / (rho*max(hc,0)) = 0.5/2 = 0.25 | hc < 0 -> saturated | hc = 0 -> saturated
  REQUIRE(at::allclose(p.detach(), at::tensor({-0.25f, -1.0f, 1.0f}), 0, 1e-7));
  // update_hessian folds p.grad in unsquared: hc <- 0.5*hc + 0.5*grad.
  p.mutable_grad() = at::tensor({2.0f, 2.0f, -2.0f});
  opt.update_hessian();
  REQUIRE(at::allclose(opt.hessian(0, 0), at::tensor({3.0f, -1.0f, -1.0f}), 0, 1e-7));
}

TEST_CASE("Sophia refuses to step without bs and round-trips its state", "[optim][sophia]") {
  auto p = at::randn({4, 4}).set_requires_grad(true);
  Sophia a(one_group(p, 0.1), 0.965, 0.99, 0.04, 10, Sophia::Estimator::Gnb);
  p.mutable_grad() = at::randn({4, 4});
  REQUIRE_THROWS_WITH(a.step(1e-2), Contains("set_tokens_per_step"));
  a.set_tokens_per_step(128);
  a.step(1e-2);
  a.update_hessian();
  a.step(1e-2);
  auto st = a.state();
  auto p2 = p.detach().clone().set_requires_grad(true);
  Sophia b(one_group(p2, 0.1), 0.965, 0.99, 0.04, 10, Sophia::Estimator::Gnb);
  b.set_tokens_per_step(128);
  b.load_state(st);
  REQUIRE(b.steps() == 2);
  REQUIRE(b.refreshes() == 1);
  auto g = at::randn({4, 4});
  p.mutable_grad() = g.clone();
  p2.mutable_grad() = g.clone();
  a.step(1e-2);
  b.step(1e-2);
  REQUIRE(at::equal(p.detach(), p2.detach()));
  REQUIRE(at::equal(a.hessian(0, 0), b.hessian(0, 0)));
  REQUIRE_THROWS_WITH(b.load_state({}), Contains("sophia.m.w"));
}

TEST_CASE("Sophia on two parameter shards equals Sophia on the whole tensor (ZeRO-1 contract)", "[optim][sophia][shard]") {
  at::manual_seed(5);
  const int64_t n = 64;  // halves of whole SIMD vectors, so both paths run the same kernels
  auto whole = at::randn({n}).set_requires_grad(true);
  auto s0 = whole.detach().narrow(0, 0, n / 2).clone().set_requires_grad(true);
  auto s1 = whole.detach().narrow(0, n / 2, n / 2).clone().set_requires_grad(true);
  Sophia full(one_group(whole, 0.1), 0.965, 0.99, 0.04, 2, Sophia::Estimator::Gnb);
  Sophia part0(one_group(s0, 0.1, "w#0"), 0.965, 0.99, 0.04, 2, Sophia::Estimator::Gnb);
  Sophia part1(one_group(s1, 0.1, "w#1"), 0.965, 0.99, 0.04, 2, Sophia::Estimator::Gnb);
  for (auto* o : {&full, &part0, &part1}) o->set_tokens_per_step(100);
  auto feed = [&](const at::Tensor& g) {
    whole.mutable_grad() = g.clone();
    s0.mutable_grad() = g.narrow(0, 0, n / 2).clone();
    s1.mutable_grad() = g.narrow(0, n / 2, n / 2).clone();
  };
  for (int s = 0; s < 6; ++s) {
    feed(at::randn({n}));
    for (auto* o : {&full, &part0, &part1}) o->step(1e-2);
    if (hessian_refresh_due(s, 2)) {
      feed(at::randn({n}));
      for (auto* o : {&full, &part0, &part1}) o->update_hessian();
    }
  }
  REQUIRE(at::equal(whole.detach(), at::cat({s0.detach(), s1.detach()})));
  REQUIRE(part0.state().count("sophia.hc.w#0") == 1);
  // Global metrics from the shards: sum-reduce each shard's sums with the other's.
  at::Tensor other;
  part1.metrics([&](at::Tensor& sums) { other = sums.clone(); });
  auto sharded = part0.metrics([&](at::Tensor& sums) { sums += other; });
  auto reference = full.metrics();
  REQUIRE(sharded[0].first == "win_rate");
  REQUIRE(sharded[0].second == Approx(reference[0].second));
  REQUIRE(sharded[1].second == Approx(reference[1].second));
  REQUIRE(reference[0].second > 0.0);
  REQUIRE(reference[0].second < 1.0);
}

// The CPU step runs in kSliceElems-element slices with two scratch buffers (optim/sophia.cpp); it must be
// bitwise the whole-tensor ops it replaced, for both estimators, across slice boundaries, a ragged
// end and a non-contiguous parameter (which takes the whole-tensor path).
TEST_CASE("Sophia's sliced CPU step is bitwise the whole-tensor step", "[optim][sophia][slices]") {
  at::set_num_threads(2);
  for (auto est : {Sophia::Estimator::Gnb, Sophia::Estimator::Hutchinson}) {
    INFO((est == Sophia::Estimator::Gnb ? "gnb" : "hutchinson"));
    at::manual_seed(7);
    const double lr = 2e-3, b1 = 0.965, b2 = 0.99, rho = 0.04, bs = 480, wd = 0.1;
    std::vector<at::Tensor> init = {at::randn({2 * kSliceElems + 301}), at::randn({kSliceElems}), at::randn({300, 70}),
                                    at::randn({40, 30}).t()};
    std::vector<at::Tensor> ours, ref, m, hc;
    std::vector<ParamGroup> groups(1);
    groups[0].weight_decay = wd;
    for (size_t i = 0; i < init.size(); ++i) {
      ours.push_back(i == 3 ? init[i].clone().t().contiguous().t().set_requires_grad(true)
                            : init[i].clone().set_requires_grad(true));
      ref.push_back(init[i].clone().contiguous());
      m.push_back(at::zeros_like(ref.back()));
      // hc spanning many magnitudes, some negative (Hutchinson), so ratios clip and do not.
      hc.push_back(at::randn(ref.back().sizes()) * at::exp(at::randn(ref.back().sizes()) * 3.0) * 1e-3);
      groups[0].names.push_back("p" + std::to_string(i));
      groups[0].params.push_back(ours.back());
    }
    REQUIRE_FALSE(ours[3].is_contiguous());
    Sophia opt(groups, b1, b2, rho, 10, est);
    opt.set_tokens_per_step(bs);
    std::map<std::string, at::Tensor> st = {{"sophia.steps", at::tensor({int64_t{0}})},
                                            {"sophia.refreshes", at::tensor({int64_t{0}})}};
    for (size_t i = 0; i < init.size(); ++i) {
      st["sophia.m.p" + std::to_string(i)] = m[i];
      st["sophia.hc.p" + std::to_string(i)] = hc[i];
    }
    opt.load_state(st);
    for (int t = 1; t <= 4; ++t) {
      for (size_t i = 0; i < init.size(); ++i) {
        auto grad = at::randn(init[i].sizes()) * at::pow(10.0, at::randint(-4, 2, init[i].sizes()).to(at::kFloat));
        ours[i].mutable_grad() = grad.clone();
        // The whole-tensor ops, as the step ran them before slicing.
        auto& p = ref[i];
        p.mul_(1.0 - lr * wd);
        m[i].mul_(b1).add_(grad, 1.0 - b1);
        auto scaled = est == Sophia::Estimator::Gnb ? hc[i] * (rho * bs) : hc[i].clamp_min(0.0).mul_(rho);
        auto ratio = (m[i].abs() / scaled.add_(1e-15)).clamp_max_(1.0);
        p.addcmul_(m[i].sign(), ratio, -lr);
      }
      opt.step(lr);
      for (size_t i = 0; i < init.size(); ++i) {
        INFO("parameter " << i << ", step " << t);
        REQUIRE(at::equal(ours[i].detach(), ref[i]));
        REQUIRE(at::equal(opt.momentum(0, i), m[i]));
      }
    }
  }
}
