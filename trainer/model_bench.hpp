// `strata bench-model`: training-step throughput of a model preset on random tokens (no data loader),
// for scripts/bench/models.sh and scripts/gpu/check.sh, which run a PyTorch-eager reference beside it.
// A step is forward + backward, plus an AdamW update when `optimizer` is "adamw" (fused on CUDA).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::trainer {

struct ModelBenchOptions {
  std::string recipe;                // a recipe or preset (only the model section is used)
  std::vector<std::string> overrides;
  int64_t batch = 2, seq_len = 64, steps = 3, warmup = 1, threads = 0;
  std::string device = "cpu";        // cpu | cuda
  std::string dtype = "fp32";        // fp32 | bf16 (autocast on CUDA or CPU; weights stay fp32)
  std::string optimizer = "none";    // none | adamw (fused kernel) | adamw-exact (op-by-op loop) | sophia
  bool fused_loss = false;           // the head and loss as models::linear_cross_entropy (train.fused_loss)
  bool cpu_cache = true;             // Strata's caching CPU allocator (train.cpu_cache; trainer/cpu_allocator.hpp)
  // When set: the initial weights (Strata names) and the batch ("__ids", "__targets") go to this
  // safetensors file, so scripts/bench/models_reference.py --load can start from the same state.
  std::string save_init;
};

// Prints the resolved model shape, tokens/s, achieved FLOP/s, (on a known GPU) MFU and the process's
// peak resident memory and minor page faults per timed step; returns tokens/s.
double bench_model(const ModelBenchOptions& opt);

}  // namespace strata::trainer
