// When and how many disk checkpoints to keep.
#pragma once
#include <cstdint>

namespace strata::checkpoint {

struct CheckpointConfig {
  int64_t every = 0;      // steps between checkpoints; 0 = only at the end of the run
  int64_t keep = 3;       // keep the last K
  int64_t keep_every = 0; // additionally keep every M-th step forever (0 = none)
  bool async = false;     // write in a background thread from a staging copy (checkpoint/async_saver.hpp)
};

}  // namespace strata::checkpoint
