// Parallel layout requested by the recipe: world = tp x pp x dp.
#pragma once
#include <cstdint>

namespace strata::parallel {

struct ParallelConfig {
  int64_t tp = 1;
  int64_t pp = 1;
  int64_t dp = 0;  // 0 = inferred from the world size
};

}  // namespace strata::parallel
