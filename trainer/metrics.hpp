// metrics.jsonl (one JSON object per line, keys chosen by the caller, numbers only) and the same
// scalars as TensorBoard events under <run_dir>/tb/.
#pragma once
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "trainer/tensorboard.hpp"

namespace strata::trainer {

class MetricsWriter {
 public:
  MetricsWriter() = default;
  // append = true keeps lines from an earlier run (resume); lines for steps >= first_step are dropped.
  MetricsWriter(const std::filesystem::path& path, int64_t first_step);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  void write(const std::vector<std::pair<std::string, double>>& fields);

 private:
  std::FILE* f_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
};

}  // namespace strata::trainer
