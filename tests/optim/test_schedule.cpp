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

TEST_CASE("warmup-stable-decay: linear and 1-sqrt decay over the last fraction", "[optim][schedule]") {
  ScheduleConfig s;
  s.name = "wsd";
  s.warmup_steps = 10;
  s.min_lr_ratio = 0.0;
  s.decay_fraction = 0.2;  // 100 steps: decay over steps 80..99
  REQUIRE(lr_at(s, 1.0, 0, 100) == Approx(0.1));
  REQUIRE(lr_at(s, 1.0, 9, 100) == Approx(1.0));
  REQUIRE(lr_at(s, 1.0, 10, 100) == 1.0);
  REQUIRE(lr_at(s, 1.0, 79, 100) == 1.0);
  REQUIRE(lr_at(s, 1.0, 80, 100) == 1.0);  // first decay step still at peak (progress 0)
  REQUIRE(lr_at(s, 1.0, 99, 100) == Approx(0.0).margin(1e-12));
  // progress (step - 80) / 19
  REQUIRE(lr_at(s, 2.0, 89, 100) == Approx(2.0 * (1.0 - 9.0 / 19.0)));
  s.decay_shape = "1-sqrt";
  REQUIRE(lr_at(s, 2.0, 89, 100) == Approx(2.0 * (1.0 - std::sqrt(9.0 / 19.0))));
  s.min_lr_ratio = 0.1;
  REQUIRE(lr_at(s, 1.0, 99, 100) == Approx(0.1));
  REQUIRE(lr_at(s, 1.0, 84, 100) == Approx(1.0 - 0.9 * std::sqrt(4.0 / 19.0)));
  s.decay_fraction = 0.0;
  REQUIRE(lr_at(s, 1.0, 99, 100) == 1.0);
}

TEST_CASE("re-warming restarts warmup to the new peak at the resumed step", "[optim][schedule]") {
  ScheduleConfig s;
  s.name = "cosine";
  s.warmup_steps = 10;
  s.min_lr_ratio = 0.1;
  s.rewarm_steps = 20;
  // Before rewarm_from is set the schedule is the plain one.
  REQUIRE(lr_at(s, 3.0, 150, 200) == lr_at(ScheduleConfig{s.name, 10, 0.1}, 3.0, 150, 200));
  s.rewarm_from = 100;
  REQUIRE(lr_at(s, 3.0, 99, 200) == Approx(lr_at(ScheduleConfig{s.name, 10, 0.1}, 3.0, 99, 200)));
  REQUIRE(lr_at(s, 3.0, 100, 200) == Approx(3.0 / 20));
  REQUIRE(lr_at(s, 3.0, 109, 200) == Approx(3.0 * 10 / 20));
  REQUIRE(lr_at(s, 3.0, 119, 200) == Approx(3.0));
  REQUIRE(lr_at(s, 3.0, 199, 200) == Approx(0.3));  // cosine over the remaining steps to min
  // The restarted cosine is at its midpoint halfway through the remaining 80 post-warmup steps.
  REQUIRE(lr_at(s, 3.0, 120 + 79 / 2, 200) == Approx(0.3 + 0.5 * 2.7).margin(0.06));
  s.name = "wsd";
  s.decay_fraction = 0.5;  // of the 100 remaining steps: decay over 150..199
  REQUIRE(lr_at(s, 3.0, 149, 200) == 3.0);
  REQUIRE(lr_at(s, 3.0, 199, 200) == Approx(0.3));
}
