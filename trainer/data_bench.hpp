// `strata bench-data`: how fast the data side is next to what the trainer consumes. Measures, in
// one process: `strata prep` (MB/s and tokens/s on a text file), the training loader (tokens/s of
// the recipe's batches, mixture included), and the trainer itself (tokens/s over a few steps of
// the recipe), and prints the ratios. For scripts/bench/data.sh; a benchmark, not a test.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::trainer {

struct DataBenchOptions {
  std::string recipe;
  std::vector<std::string> overrides;
  std::vector<std::string> inputs;  // text to prep (e.g. datasets/kjv.txt)
  int64_t prep_threads = 0;         // 0 = all cores
  int64_t train_steps = 30;         // timed trainer steps
  double loader_seconds = 3.0;
};

struct DataBenchResult {
  double prep_mb_per_s = 0, prep_tokens_per_s = 0, loader_tokens_per_s = 0, trainer_tokens_per_s = 0;
};

DataBenchResult bench_data(const DataBenchOptions& opt);

}  // namespace strata::trainer
