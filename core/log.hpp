// Rank-prefixed logging through spdlog. Rank 0 logs at info by default, other ranks at warn;
// STRATA_LOG_LEVEL (trace|debug|info|warn|error) and STRATA_LOG_ALL_RANKS=1 change that.
#pragma once
#include <spdlog/spdlog.h>

namespace strata {

void init_logging(int rank, int world_size);

}  // namespace strata
