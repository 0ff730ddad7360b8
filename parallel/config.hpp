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
  bool sequence_parallel = false;  // tp > 1: split norm/dropout regions along the sequence
  int64_t vocab_multiple = 128;    // tp > 1: vocabulary padded to a multiple of vocab_multiple x tp
  // Pipeline parallelism (pp > 1; trainer/pipeline_train.hpp): one training step's micro-batches are
  // train.grad_accum; chunks per rank for the interleaved schedule; how layers are cut into chunks.
  std::string schedule = "1f1b";     // gpipe | 1f1b | interleaved
  int64_t virtual_stages = 1;        // chunks per pipeline rank (interleaved: >= 2)
  std::string partition = "params";  // params | flops | explicit layer counts per chunk, e.g. "3,3,2,2"
};

}  // namespace strata::parallel
