#include "trainer/metrics.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.hpp"

namespace strata::trainer {

MetricsWriter::MetricsWriter(const std::filesystem::path& path, int64_t first_step) {
  // Keep the lines of steps before first_step (a resumed run rewrites what comes after).
  std::string kept;
  if (first_step > 0 && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      auto pos = line.find("\"step\": ");
      if (pos == std::string::npos) continue;
      if (std::stoll(line.substr(pos + 8)) < first_step) kept += line + "\n";
    }
  }
  f_ = std::fopen(path.c_str(), "w");
  if (!f_) fail("cannot open metrics file '{}'", path.string());
  std::fputs(kept.c_str(), f_);
  std::fflush(f_);
  tb_ = std::make_unique<TensorBoardWriter>(path.parent_path() / "tb");
}

MetricsWriter::~MetricsWriter() {
  if (f_) std::fclose(f_);
}

void MetricsWriter::write(const std::vector<std::pair<std::string, double>>& fields) {
  if (!f_) return;
  std::string line = "{";
  for (size_t i = 0; i < fields.size(); ++i) {
    const auto& [k, v] = fields[i];
    std::string num = std::isfinite(v) ? fmt::format("{}", v) : "null";
    if (k == "step") num = fmt::format("{}", static_cast<int64_t>(v));
    line += fmt::format("{}\"{}\": {}", i ? ", " : "", k, num);
  }
  line += "}\n";
  std::fputs(line.c_str(), f_);
  std::fflush(f_);
  if (tb_ && !fields.empty() && fields[0].first == "step") tb_->scalars(static_cast<int64_t>(fields[0].second), fields);
}

}  // namespace strata::trainer
