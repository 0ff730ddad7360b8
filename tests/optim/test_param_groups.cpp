#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "optim/adamw.hpp"
#include "optim/optimizer.hpp"

using namespace strata::optim;

TEST_CASE("decay rules: matrices vs linear_only (the Sophia repo's rule)", "[optim][groups]") {
  std::vector<std::pair<std::string, at::Tensor>> named = {
      {"tok_emb.weight", at::zeros({10, 4})}, {"blocks.0.attn.wq.weight", at::zeros({4, 4})},
      {"blocks.0.attn.wq.bias", at::zeros({4})}, {"norm_f.weight", at::zeros({4})}};
  auto m = make_param_groups(named, 0.1, DecayRule::Matrices);
  REQUIRE(m.size() == 2);
  REQUIRE(m[0].weight_decay == 0.1);
  REQUIRE(m[0].names == std::vector<std::string>{"tok_emb.weight", "blocks.0.attn.wq.weight"});
  REQUIRE(m[1].weight_decay == 0.0);
  auto l = make_param_groups(named, 0.2, parse_decay_rule("linear_only"), {"blocks.0.attn.wq.weight"});
  REQUIRE(l[0].names == std::vector<std::string>{"blocks.0.attn.wq.weight"});
  REQUIRE(l[0].weight_decay == 0.2);
  REQUIRE(l[1].names == std::vector<std::string>{"tok_emb.weight", "blocks.0.attn.wq.bias", "norm_f.weight"});
  REQUIRE_THROWS_AS(make_param_groups(named, 0.2, DecayRule::LinearOnly, {}), strata::Error);
  REQUIRE_THROWS_AS(parse_decay_rule("all"), strata::Error);
}

TEST_CASE("registry builds adamw and sophia and names the choices for an unknown optimizer", "[optim][registry]") {
  auto p = at::zeros({3}).set_requires_grad(true);
  ParamGroup g;
  g.names = {"p"};
  g.params = {p};
  OptimConfig c;
  c.name = "sophia";
  auto s = make_optimizer(c, {g});
  REQUIRE(s->hessian_interval() == 10);
  REQUIRE(s->hessian_estimator() == "gnb");
  c.name = "adamw";
  auto a = make_optimizer(c, {g});
  REQUIRE(a->hessian_interval() == 0);
  REQUIRE_THROWS_AS(a->update_hessian(), strata::Error);
  c.name = "lion";
  REQUIRE_THROWS_WITH(make_optimizer(c, {g}), Catch::Matchers::Contains("adamw, sophia"));
}

TEST_CASE("AdamW fused kernel (CPU) agrees with the exact loop and torch::optim::AdamW", "[optim][adamw][fused]") {
  at::manual_seed(10);
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  auto init_a = at::randn({33, 7}), init_b = at::randn({19});
  auto make = [&](bool fused, at::Tensor& a, at::Tensor& b) {
    a = init_a.clone().set_requires_grad(true);
    b = init_b.clone().set_requires_grad(true);
    ParamGroup d, n;
    d.names = {"a"}, d.params = {a}, d.weight_decay = wd;
    n.names = {"b"}, n.params = {b};
    return AdamW({d, n}, b1, b2, eps, fused);
  };
  at::Tensor la, lb, fa, fb;
  auto loop = make(false, la, lb);
  auto fused = make(true, fa, fb);
  auto ra = init_a.clone().set_requires_grad(true), rb = init_b.clone().set_requires_grad(true);
  torch::optim::AdamW ref({torch::optim::OptimizerParamGroup({ra}, std::make_unique<torch::optim::AdamWOptions>(
                                                                    torch::optim::AdamWOptions(lr).betas({b1, b2}).eps(eps).weight_decay(wd))),
                           torch::optim::OptimizerParamGroup({rb}, std::make_unique<torch::optim::AdamWOptions>(
                                                                    torch::optim::AdamWOptions(lr).betas({b1, b2}).eps(eps).weight_decay(0.0)))});
  for (int t = 0; t < 5; ++t) {
    auto ga = at::randn({33, 7}), gb = at::randn({19});
    for (auto* x : {&la, &fa, &ra}) x->mutable_grad() = ga.clone();
    for (auto* x : {&lb, &fb, &rb}) x->mutable_grad() = gb.clone();
    loop.step(lr);
    fused.step(lr);
    ref.step();
  }
  REQUIRE(at::allclose(fa.detach(), la.detach(), 0, 1e-6));
  REQUIRE(at::allclose(fb.detach(), lb.detach(), 0, 1e-6));
  REQUIRE(at::allclose(fa.detach(), ra.detach(), 0, 1e-6));
  // Fused state resumes: load the loop's state into a fresh fused optimizer and take one more step.
  at::Tensor ca, cb;
  auto resumed = make(true, ca, cb);
  {
    torch::NoGradGuard ng;
    ca.copy_(la.detach());
    cb.copy_(lb.detach());
  }
  resumed.load_state(loop.state());
  auto ga = at::randn({33, 7}), gb = at::randn({19});
  for (auto* x : {&la, &ca}) x->mutable_grad() = ga.clone();
  for (auto* x : {&lb, &cb}) x->mutable_grad() = gb.clone();
  loop.step(lr);
  resumed.step(lr);
  REQUIRE(at::allclose(ca.detach(), la.detach(), 0, 1e-6));
}
