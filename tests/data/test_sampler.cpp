#include <algorithm>
#include <set>

#include <catch2/catch.hpp>

#include "data/sampler.hpp"

using namespace strata::data;

TEST_CASE("window permutation is a bijection for many sizes", "[data][sampler]") {
  for (uint64_t n : {1ULL, 2ULL, 3ULL, 17ULL, 1000ULL, 4097ULL}) {
    WindowPermutation perm(n, 42);
    std::set<uint64_t> seen;
    for (uint64_t i = 0; i < n; ++i) seen.insert(perm(i));
    REQUIRE(seen.size() == n);
    REQUIRE(*seen.rbegin() == n - 1);
  }
}

TEST_CASE("sampler is a pure function of (seed, index) and shuffles", "[data][sampler]") {
  SequenceSampler a(100000, 64, 1), b(100000, 64, 1), c(100000, 64, 2);
  int same_as_identity = 0, differs_from_other_seed = 0;
  for (uint64_t i = 0; i < 500; ++i) {
    REQUIRE(a.start_of(i) == b.start_of(i));
    same_as_identity += a.start_of(i) == i * 64;
    differs_from_other_seed += a.start_of(i) != c.start_of(i);
  }
  CHECK(same_as_identity < 10);
  CHECK(differs_from_other_seed > 490);
}

TEST_CASE("no repeats within an epoch; a new epoch reshuffles", "[data][sampler]") {
  SequenceSampler s(64 * 300 + 1, 64, 9);
  REQUIRE(s.windows() == 300);
  std::set<uint64_t> e0, e1;
  bool same_order = true;
  for (uint64_t i = 0; i < 300; ++i) {
    e0.insert(s.start_of(i));
    e1.insert(s.start_of(300 + i));
    same_order = same_order && s.start_of(i) == s.start_of(300 + i);
  }
  REQUIRE(e0.size() == 300);
  REQUIRE(e1 == e0);
  REQUIRE_FALSE(same_order);
}

TEST_CASE("a global batch is the same set of samples for dp = 1, 2, 4", "[data][sampler]") {
  const int64_t global_mb = 8, accum = 2;
  for (int64_t step : {0, 5}) {
    std::vector<uint64_t> ref;
    for (int64_t a = 0; a < accum; ++a) {
      auto v = micro_batch_indices(step, a, global_mb, accum, 0, 1);
      ref.insert(ref.end(), v.begin(), v.end());
    }
    std::sort(ref.begin(), ref.end());
    for (int64_t dp : {2, 4}) {
      std::vector<uint64_t> all;
      for (int64_t r = 0; r < dp; ++r)
        for (int64_t a = 0; a < accum; ++a) {
          auto v = micro_batch_indices(step, a, global_mb / dp, accum, r, dp);
          all.insert(all.end(), v.begin(), v.end());
        }
      std::sort(all.begin(), all.end());
      REQUIRE(all == ref);
    }
  }
}
