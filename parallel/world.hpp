// This process's place in the job: rank, world size, local rank. The distributed runtime fills it
// from the launcher's environment; a plain run is rank 0 of 1.
#pragma once
#include <cstdint>

namespace strata::parallel {

struct World {
  int64_t rank = 0;
  int64_t size = 1;
  int64_t local_rank = 0;
  int64_t local_size = 1;
  bool is_main() const { return rank == 0; }
};

// Reads RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE when set (torchrun), else one process.
World world_from_env();

}  // namespace strata::parallel
