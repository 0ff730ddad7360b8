// Text sampling from a trained run: temperature and top-k over the model's next-token logits.
#pragma once
#include <cstdint>
#include <string>

namespace strata::trainer {

struct GenerateOptions {
  std::string run_dir;
  std::string prompt;
  int64_t max_new_tokens = 200;
  double temperature = 0.8;
  int64_t top_k = 40;
  uint64_t seed = 0;
};

// Loads the newest checkpoint of the run and returns prompt + continuation.
std::string generate_text(const GenerateOptions& opt);

}  // namespace strata::trainer
