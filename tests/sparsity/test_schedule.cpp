// Spec §4.2 (cubic schedule), §4.4 (compute accounting), §4.5 (N_avg).
#include <cmath>
#include <numeric>
#include <vector>

#include <catch2/catch.hpp>

#include "sparsity/schedule.hpp"

using namespace strata::sparsity;


TEST_CASE("cubic schedule: 0 at t0, s_f at t1, monotone, flat at t1, 0.875 s_f at the midpoint", "[sparsity][schedule]") {
  const double sf = 0.8;
  REQUIRE(cubic_sparsity(0.0, sf) == 0.0);
  REQUIRE(cubic_sparsity(1.0, sf) == sf);
  REQUIRE(cubic_sparsity(0.5, sf) == Approx(0.875 * sf).epsilon(1e-12));
  double prev = 0;
  for (int i = 0; i <= 1000; ++i) {
    const double s = cubic_sparsity(i / 1000.0, sf);
    REQUIRE(s >= prev);
    prev = s;
  }
  const double h = 1e-5;  // one-sided slope at x = 1 tends to 0 (cubic: O(h^2))
  REQUIRE((cubic_sparsity(1.0, sf) - cubic_sparsity(1.0 - h, sf)) / h < 1e-8);
  REQUIRE((cubic_sparsity(0.5 + h, sf) - cubic_sparsity(0.5, sf)) / h > 0.1);  // and it is not flat elsewhere
}

TEST_CASE("compute fraction of the model-card schedule: 25,050 steps, pruning 2,500 -> 12,600", "[sparsity][schedule]") {
  // Density 1 before the window, in-window densities summing to 4,990, density 0.2 after.
  std::vector<double> d(25050, 1.0);
  const int64_t t0 = 2500, t1 = 12600, in_window = t1 - t0;
  for (int64_t i = t0; i < t1; ++i) d[i] = 4990.0 / static_cast<double>(in_window);
  for (int64_t i = t1; i < 25050; ++i) d[i] = 0.2;
  REQUIRE(std::accumulate(d.begin(), d.end(), 0.0) == Approx(9980.0));
  REQUIRE(compute_fraction(d, t0) == Approx(0.250).margin(1e-3));
  REQUIRE(compute_fraction(d, t1) == Approx(0.750).margin(1e-3));
  // N_avg of the card: average density 0.3984 of the linear parameters (0.45B of 1.14B).
  const double n_linear = 1.14e9;
  std::vector<double> nonzero(d.size());
  for (size_t i = 0; i < d.size(); ++i) nonzero[i] = d[i] * n_linear;
  REQUIRE(n_avg(nonzero) / n_linear == Approx(0.3984).margin(1e-4));
  REQUIRE(n_avg(nonzero) == Approx(0.45e9).margin(0.005e9));
}

TEST_CASE("N_avg of a dense run is N", "[sparsity][schedule]") {
  REQUIRE(n_avg(std::vector<double>(777, 3.2e6)) == Approx(3.2e6).epsilon(1e-15));
}

TEST_CASE("plan_gradual puts the window at 25% / 75% of the density-weighted compute", "[sparsity][schedule]") {
  for (double sf : {0.5, 0.8}) {
    for (int64_t every : {1, 10}) {
      for (double share : {1.0, 0.7}) {
        auto p = plan_gradual(25050, sf, 0.25, 0.75, every, share);
        INFO("s_f " << sf << " every " << every << " share " << share);
        REQUIRE(p.sparsity.size() == 25050);
        REQUIRE(compute_fraction(p.cost, p.start_step) == Approx(0.25).margin(1e-3));
        REQUIRE(compute_fraction(p.cost, p.end_step) == Approx(0.75).margin(1e-3));
        REQUIRE(std::accumulate(p.cost.begin(), p.cost.end(), 0.0) == Approx(p.total_cost));
        for (int64_t i = 0; i < p.start_step; ++i) REQUIRE(p.sparsity[i] == 0.0);
        for (int64_t i = p.end_step; i < 25050; ++i) REQUIRE(p.sparsity[i] == sf);
        for (int64_t i = 1; i < 25050; ++i) REQUIRE(p.sparsity[i] >= p.sparsity[i - 1]);
        // Events only every `every` steps inside the window.
        for (int64_t i = p.start_step + 1; i < p.end_step; ++i)
          if ((i - p.start_step) % every != 0) REQUIRE(p.sparsity[i] == p.sparsity[i - 1]);
        // Cost model: a step at sparsity s costs (1 - share) + share (1 - s).
        REQUIRE(p.cost[p.end_step] == Approx((1 - share) + share * (1 - sf)));
      }
    }
  }
  // Compute- vs step-time: with pruning, the window's end comes later in steps than 75%.
  auto p = plan_gradual(1000, 0.8, 0.25, 0.75, 1);
  REQUIRE(p.start_step < 250);  // 25% of compute is reached before 25% of steps (later steps are cheaper)
  REQUIRE(p.end_step > 400);
}

TEST_CASE("plan_gradual rejects bad windows", "[sparsity][schedule]") {
  REQUIRE_THROWS(plan_gradual(100, 0.5, 0.75, 0.25, 1));
  REQUIRE_THROWS(plan_gradual(100, 1.5, 0.25, 0.75, 1));
  REQUIRE_THROWS(plan_gradual(100, 0.5, 0.25, 0.75, 0));
}
