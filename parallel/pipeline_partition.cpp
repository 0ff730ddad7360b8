#include "parallel/pipeline_partition.hpp"

#include <algorithm>
#include <limits>
#include <ostream>
#include <sstream>

#include "core/error.hpp"

namespace strata::parallel {

std::ostream& operator<<(std::ostream& os, const LayerRange& r) { return os << "[" << r.begin << ", " << r.end << ")"; }

std::vector<double> chunk_costs(const PartitionCosts& costs, const std::vector<LayerRange>& parts) {
  std::vector<double> out;
  for (size_t i = 0; i < parts.size(); ++i) {
    double c = 0;
    for (int64_t l = parts[i].begin; l < parts[i].end; ++l) c += costs.layers[l];
    if (i == 0) c += costs.pre;
    if (i + 1 == parts.size()) c += costs.post;
    out.push_back(c);
  }
  return out;
}

std::vector<LayerRange> balanced_partition(const PartitionCosts& costs, int64_t chunks) {
  const int64_t L = static_cast<int64_t>(costs.layers.size());
  if (chunks < 1) fail("pipeline partition: {} chunks requested", chunks);
  if (L < chunks)
    fail("pipeline partition: {} layers cannot fill {} pipeline chunks (parallel.pp x parallel.virtual_stages); "
         "every chunk needs at least one layer",
         L, chunks);
  // prefix[i] = cost of layers [0, i).
  std::vector<double> prefix(L + 1, 0.0);
  for (int64_t i = 0; i < L; ++i) prefix[i + 1] = prefix[i] + costs.layers[i];
  auto cost = [&](int64_t b, int64_t e, int64_t k) {  // chunk k covering [b, e)
    double c = prefix[e] - prefix[b];
    if (k == 0) c += costs.pre;
    if (k == chunks - 1) c += costs.post;
    return c;
  };
  // best[k][i]: the smallest possible maximum chunk cost when chunks 0..k-1 cover layers [0, i).
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(chunks + 1, std::vector<double>(L + 1, inf));
  std::vector<std::vector<int64_t>> cut(chunks + 1, std::vector<int64_t>(L + 1, -1));
  best[0][0] = 0;
  for (int64_t k = 1; k <= chunks; ++k)
    for (int64_t i = k; i <= L - (chunks - k); ++i)
      for (int64_t j = k - 1; j < i; ++j) {
        if (best[k - 1][j] == inf) continue;
        const double v = std::max(best[k - 1][j], cost(j, i, k - 1));
        if (v < best[k][i] - 1e-12 * std::max(1.0, std::abs(v))) {
          best[k][i] = v;
          cut[k][i] = j;
        }
      }
  std::vector<LayerRange> parts(chunks);
  int64_t end = L;
  for (int64_t k = chunks; k >= 1; --k) {
    const int64_t b = cut[k][end];
    parts[k - 1] = {b, end};
    end = b;
  }
  return parts;
}

std::vector<LayerRange> explicit_partition(const std::vector<int64_t>& counts, int64_t n_layers, int64_t chunks) {
  if (static_cast<int64_t>(counts.size()) != chunks)
    fail("parallel.partition lists {} chunks but parallel.pp x parallel.virtual_stages = {}", counts.size(), chunks);
  std::vector<LayerRange> parts;
  int64_t at = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] < 1) fail("parallel.partition: chunk {} has {} layers; every chunk needs at least one", i, counts[i]);
    parts.push_back({at, at + counts[i]});
    at += counts[i];
  }
  if (at != n_layers) fail("parallel.partition sums to {} layers but the model has {} (model.n_layer)", at, n_layers);
  return parts;
}

std::vector<int64_t> parse_layer_counts(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(std::remove_if(item.begin(), item.end(), ::isspace), item.end());
    if (item.empty()) fail("parallel.partition = '{}': empty entry (expected counts like 3,3,2,2)", text);
    size_t used = 0;
    int64_t n = 0;
    try {
      n = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size()) fail("parallel.partition = '{}': '{}' is not an integer", text, item);
    out.push_back(n);
  }
  return out;
}

}  // namespace strata::parallel
