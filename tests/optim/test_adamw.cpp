#include <cmath>

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <catch2/catch.hpp>

#include "optim/adamw.hpp"
#include "optim/slices.hpp"

using namespace strata::optim;

namespace {
std::vector<ParamGroup> one_group(at::Tensor p, double wd) {
  ParamGroup g;
  g.names = {"w"};
  g.params = {p};
  g.weight_decay = wd;
  return {g};
}
}  // namespace

TEST_CASE("AdamW matches the formula and torch::optim::AdamW over 5 steps", "[optim][adamw]") {
  at::manual_seed(0);
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  auto init = at::randn({7, 5}, at::kFloat);
  auto ours = init.clone().set_requires_grad(true);
  auto ref = init.clone().set_requires_grad(true);
  AdamW opt(one_group(ours, wd), b1, b2, eps);
  torch::optim::AdamW torch_opt({ref}, torch::optim::AdamWOptions(lr).betas({b1, b2}).eps(eps).weight_decay(wd));
  // Formula in double precision.
  auto theta = init.to(at::kDouble), m = at::zeros_like(theta), v = at::zeros_like(theta);
  for (int t = 1; t <= 5; ++t) {
    auto g = at::randn({7, 5}, at::kFloat);
    ours.mutable_grad() = g.clone();
    ref.mutable_grad() = g.clone();
    opt.step(lr);
    torch_opt.step();
    auto gd = g.to(at::kDouble);
    theta = theta * (1 - lr * wd);
    m = b1 * m + (1 - b1) * gd;
    v = b2 * v + (1 - b2) * gd * gd;
    auto mhat = m / (1 - std::pow(b1, t)), vhat = v / (1 - std::pow(b2, t));
    theta = theta - lr * mhat / (vhat.sqrt() + eps);
  }
  REQUIRE(at::allclose(ours.detach().to(at::kDouble), theta, 0, 1e-6));
  REQUIRE(at::allclose(ours.detach(), ref.detach(), 0, 1e-6));
}

TEST_CASE("AdamW first step moves each coordinate by about lr; pure decay with zero grads", "[optim][adamw]") {
  auto p = at::randn({100}).set_requires_grad(true);
  auto before = p.detach().clone();
  AdamW opt(one_group(p, 0.0), 0.9, 0.999, 1e-8);
  auto g = at::randn({100});
  p.mutable_grad() = g.clone();
  opt.step(1e-3);
  auto expected = 1e-3 * g.abs() / (g.abs() + 1e-8);
  REQUIRE(at::allclose((before - p.detach()).abs(), expected, 1e-4, 2e-7));

  auto q = at::randn({50}).set_requires_grad(true);
  auto q0 = q.detach().clone();
  AdamW decay(one_group(q, 0.1), 0.9, 0.999, 1e-8);
  q.mutable_grad() = at::zeros({50});
  decay.step(0.5);
  REQUIRE(at::equal(q.detach(), q0 * (1 - 0.5 * 0.1)));
}

TEST_CASE("AdamW state round-trips", "[optim][adamw]") {
  auto p = at::randn({4, 4}).set_requires_grad(true);
  AdamW a(one_group(p, 0.1), 0.9, 0.95, 1e-8);
  p.mutable_grad() = at::randn({4, 4});
  a.step(1e-2);
  auto st = a.state();
  auto p2 = p.detach().clone().set_requires_grad(true);
  AdamW b(one_group(p2, 0.1), 0.9, 0.95, 1e-8);
  b.load_state(st);
  auto g = at::randn({4, 4});
  p.mutable_grad() = g.clone();
  p2.mutable_grad() = g.clone();
  a.step(1e-2);
  b.step(1e-2);
  REQUIRE(at::equal(p.detach(), p2.detach()));
}

TEST_CASE("AdamW's sliced CPU update is bitwise the whole-tensor update (torch's single-tensor AdamW)",
          "[optim][adamw]") {
  at::set_num_threads(2);
  at::manual_seed(3);
  const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8;
  // Sizes around the 262,144-element slice (optim/slices.hpp): several slices with a ragged end, exactly one, below one,
  // a 2-D weight, and a transposed (non-contiguous) parameter that takes the whole-tensor path.
  std::vector<at::Tensor> init = {at::randn({3 * kSliceElems + 77}), at::randn({kSliceElems}), at::randn({1000}),
                                  at::randn({300, 700}), at::randn({40, 30}).t()};
  std::vector<double> decay = {0.1, 0.0, 0.1, 0.1, 0.1};
  std::vector<ParamGroup> groups;
  std::vector<at::Tensor> ours, ref, m, v;
  for (size_t i = 0; i < init.size(); ++i) {
    ours.push_back(init[i].clone().set_requires_grad(true));
    if (i == 4) ours.back() = init[i].clone().t().contiguous().t().set_requires_grad(true);
    ref.push_back(init[i].clone().contiguous());
    m.push_back(at::zeros_like(ref.back()));
    v.push_back(at::zeros_like(ref.back()));
    ParamGroup g;
    g.names = {"p" + std::to_string(i)};
    g.params = {ours.back()};
    g.weight_decay = decay[i];
    groups.push_back(g);
  }
  REQUIRE_FALSE(ours[4].is_contiguous());
  AdamW opt(groups, b1, b2, eps);
  for (int t = 1; t <= 6; ++t) {
    const double bc1 = 1.0 - std::pow(b1, t), bc2_sqrt = std::sqrt(1.0 - std::pow(b2, t));
    for (size_t i = 0; i < init.size(); ++i) {
      // Large, small and zero gradients, so the moments span many magnitudes.
      auto grad = at::randn(init[i].sizes()) * at::pow(10.0, at::randint(-6, 3, init[i].sizes()).to(at::kFloat));
      grad.masked_fill_(at::rand(init[i].sizes()) < 0.05, 0.0);
      ours[i].mutable_grad() = grad.clone();
      // The whole-tensor ops, as torch.optim.AdamW(foreach=False) runs them.
      auto& p = ref[i];
      if (decay[i] != 0.0) p.mul_(1.0 - lr * decay[i]);
      m[i].lerp_(grad, 1.0 - b1);
      v[i].mul_(b2).addcmul_(grad, grad, 1.0 - b2);
      p.addcdiv_(m[i], (v[i].sqrt() / bc2_sqrt).add_(eps), -lr / bc1);
    }
    opt.step(lr);
    for (size_t i = 0; i < init.size(); ++i) {
      INFO("parameter " << i << ", step " << t);
      REQUIRE(at::equal(ours[i].detach(), ref[i]));
    }
  }
  auto st = opt.state();
  for (size_t i = 0; i < init.size(); ++i) {
    REQUIRE(at::equal(st.at("adamw.m.p" + std::to_string(i)), m[i]));
    REQUIRE(at::equal(st.at("adamw.v.p" + std::to_string(i)), v[i]));
  }
}

// The fused kernel (optim.fused, the default): ZeRO-1 hands it flat shards that start anywhere in a
// parameter, so an element's update must not depend on its position (vector body or scalar tail);
// the counters stay equal to the step for a parameter that had no gradient in some step (as the
// exact loop's t); a transposed parameter (which ATen's CPU kernel would pair with the wrong
// gradient elements) takes the exact update and is still right.
TEST_CASE("fused AdamW: position-independent, counters follow the step, non-contiguous parameters are right",
          "[optim][adamw][fused]") {
  at::set_num_threads(2);
  at::manual_seed(5);
  const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  const int64_t n = 3 * kSliceElems + 77;
  auto init = at::randn({n});
  auto whole = init.clone().set_requires_grad(true);
  // The same elements as three pieces with ragged, unaligned boundaries.
  const std::vector<int64_t> cuts = {0, 13, kSliceElems + 7, n};
  std::vector<at::Tensor> pieces;
  std::vector<ParamGroup> piece_groups(1);
  piece_groups[0].weight_decay = wd;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    pieces.push_back(init.narrow(0, cuts[i], cuts[i + 1] - cuts[i]).clone().set_requires_grad(true));
    piece_groups[0].names.push_back("piece" + std::to_string(i));
    piece_groups[0].params.push_back(pieces.back());
  }
  // A transposed (non-contiguous) parameter, against a contiguous copy.
  auto tinit = at::randn({40, 30});
  auto transposed = tinit.clone().t().contiguous().t().set_requires_grad(true);  // strides of a transpose
  auto dense = tinit.clone().set_requires_grad(true);
  REQUIRE_FALSE(transposed.is_contiguous());
  // A parameter without a gradient in step 2 (then its counter must still read the step).
  auto sometimes = at::randn({1000}).set_requires_grad(true);
  auto sometimes_exact = sometimes.detach().clone().set_requires_grad(true);

  AdamW whole_opt(one_group(whole, wd), b1, b2, eps, /*fused=*/true);
  AdamW piece_opt(piece_groups, b1, b2, eps, /*fused=*/true);
  AdamW t_opt(one_group(transposed, wd), b1, b2, eps, /*fused=*/true);
  AdamW d_opt(one_group(dense, wd), b1, b2, eps, /*fused=*/false);
  AdamW s_opt(one_group(sometimes, wd), b1, b2, eps, /*fused=*/true);
  AdamW s_exact(one_group(sometimes_exact, wd), b1, b2, eps, /*fused=*/false);
  for (int t = 1; t <= 5; ++t) {
    auto grad = at::randn({n}) * at::pow(10.0, at::randint(-6, 3, {n}).to(at::kFloat));
    whole.mutable_grad() = grad.clone();
    for (size_t i = 0; i < pieces.size(); ++i)
      pieces[i].mutable_grad() = grad.narrow(0, cuts[i], cuts[i + 1] - cuts[i]).clone();
    auto tg = at::randn({40, 30});
    transposed.mutable_grad() = tg.t().contiguous().t();
    dense.mutable_grad() = tg.clone();
    auto sg = t == 2 ? at::Tensor() : at::randn({1000});
    sometimes.mutable_grad() = sg.defined() ? sg.clone() : sg;
    sometimes_exact.mutable_grad() = sg.defined() ? sg.clone() : sg;
    whole_opt.step(lr);
    piece_opt.step(lr);
    t_opt.step(lr);
    d_opt.step(lr);
    s_opt.step(lr);
    s_exact.step(lr);
    INFO("step " << t);
    for (size_t i = 0; i < pieces.size(); ++i)
      REQUIRE(at::equal(pieces[i].detach(), whole.detach().narrow(0, cuts[i], cuts[i + 1] - cuts[i])));
    REQUIRE(at::equal(transposed.detach(), dense.detach()));  // the exact update on both
    REQUIRE(at::allclose(sometimes.detach(), sometimes_exact.detach(), 0, 1e-6));
  }
  // The fused update really is a different computation from the exact loop (last bits), and close to it.
  auto exact = init.clone().set_requires_grad(true);
  auto fused = init.clone().set_requires_grad(true);
  AdamW e_opt(one_group(exact, wd), b1, b2, eps, false), f_opt(one_group(fused, wd), b1, b2, eps, true);
  for (int t = 1; t <= 3; ++t) {
    auto grad = at::randn({n});
    exact.mutable_grad() = grad.clone();
    fused.mutable_grad() = grad.clone();
    e_opt.step(lr);
    f_opt.step(lr);
  }
  REQUIRE(at::allclose(fused.detach(), exact.detach(), 0, 1e-6));
  REQUIRE_FALSE(at::equal(fused.detach(), exact.detach()));
  // A group without parameters (e.g. no tensor matched the no-decay rule) steps as nothing.
  auto lone = at::randn({10}).set_requires_grad(true);
  auto groups = one_group(lone, wd);
  groups.push_back(ParamGroup{});
  AdamW with_empty(groups, b1, b2, eps, true);
  lone.mutable_grad() = at::randn({10});
  REQUIRE_NOTHROW(with_empty.step(lr));
}
