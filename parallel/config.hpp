// Parallel layout and distributed-runtime settings from the recipe's `parallel:` section:
// world = tp x pp x dp.
#pragma once
#include <cstdint>
#include <string>

namespace strata::parallel {

struct ParallelConfig {
  int64_t tp = 1;
  int64_t pp = 1;
  int64_t dp = 0;  // 0 = inferred from the world size
  std::string backend = "auto";  // auto | gloo | nccl | mpi (auto: mpi under mpirun, nccl on CUDA, else gloo)
  int64_t timeout_s = 300;       // a collective that takes longer raises an Error
  double bucket_mb = 25.0;       // data-parallel gradient bucket size
  bool zero1 = false;            // shard optimizer state over dp (ZeRO stage 1)
  bool overlap = true;           // all-reduce buckets during backward (false: all after it; for benchmarks)
};

}  // namespace strata::parallel
