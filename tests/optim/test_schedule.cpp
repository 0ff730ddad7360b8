#include <catch2/catch.hpp>

#include "optim/grad_clip.hpp"
#include "optim/schedule.hpp"

#include <ATen/ATen.h>

using namespace strata::optim;

TEST_CASE("warmup + cosine schedule hits its anchor points", "[optim][schedule]") {
  ScheduleConfig s;
  s.warmup_steps = 10;
  s.min_lr_ratio = 0.1;
  REQUIRE(lr_at(s, 1.0, 0, 100) == Approx(0.1));
  REQUIRE(lr_at(s, 1.0, 9, 100) == Approx(1.0));
  REQUIRE(lr_at(s, 1.0, 10, 100) == Approx(1.0));
  REQUIRE(lr_at(s, 1.0, 99, 100) == Approx(0.1));
  double mid = lr_at(s, 1.0, 10 + 89 / 2, 100);
  REQUIRE(mid == Approx(0.55).margin(0.02));
  s.name = "constant";
  REQUIRE(lr_at(s, 2.0, 50, 100) == 2.0);
}

TEST_CASE("global grad-norm clipping", "[optim][clip]") {
  auto a = at::zeros({3}).set_requires_grad(true), b = at::zeros({4}).set_requires_grad(true);
  a.mutable_grad() = at::full({3}, 3.0);
  b.mutable_grad() = at::full({4}, 4.0);
  double expect = std::sqrt(3 * 9.0 + 4 * 16.0);
  REQUIRE(clip_grad_norm({a, b}, 1.0) == Approx(expect));
  REQUIRE(grad_norm({a, b}) == Approx(1.0).epsilon(1e-5));
  REQUIRE(clip_grad_norm({a, b}, 10.0) == Approx(1.0).epsilon(1e-5));
}
