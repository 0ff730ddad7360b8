// `strata bench-model`: forward+backward throughput of a model preset on random tokens (no data,
// no optimizer), for scripts/bench/models.sh, which runs a PyTorch-eager reference beside it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::trainer {

struct ModelBenchOptions {
  std::string recipe;                // a recipe or preset (only the model section is used)
  std::vector<std::string> overrides;
  int64_t batch = 2, seq_len = 64, steps = 3, warmup = 1, threads = 0;
};

// Prints the resolved model shape and tokens/s; returns tokens/s.
double bench_model(const ModelBenchOptions& opt);

}  // namespace strata::trainer
