// Cutting a model's L layers into C contiguous chunks (C = pp * virtual stages). parallel/ knows
// nothing of transformers: the model side supplies a cost per layer (parameters or FLOPs) plus the
// cost of what sits before the first layer (embeddings) and after the last (final norm, head, loss);
// those always live on the first and the last chunk.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace strata::parallel {

struct LayerRange {
  int64_t begin = 0, end = 0;  // [begin, end)
  int64_t size() const { return end - begin; }
  bool operator==(const LayerRange&) const = default;
};
std::ostream& operator<<(std::ostream& os, const LayerRange& r);  // "[begin, end)"

struct PartitionCosts {
  std::vector<double> layers;  // one cost per layer, in order
  double pre = 0;              // embeddings (first chunk)
  double post = 0;             // final norm + head + loss (last chunk)
};

// Contiguous split minimising the most expensive chunk (ties go to the earliest split that
// achieves the optimum). Every chunk gets at least one layer; fails if L < chunks.
std::vector<LayerRange> balanced_partition(const PartitionCosts& costs, int64_t chunks);

// From explicit layer counts per chunk (the recipe key parallel.partition, e.g. "3,3,2,2"); they must
// be positive and sum to L.
std::vector<LayerRange> explicit_partition(const std::vector<int64_t>& counts, int64_t n_layers, int64_t chunks);

// Parses "3,3,2,2" (spaces allowed); an empty string gives an empty list.
std::vector<int64_t> parse_layer_counts(const std::string& text);

// Cost of each chunk under `costs` (pre on chunk 0, post on the last).
std::vector<double> chunk_costs(const PartitionCosts& costs, const std::vector<LayerRange>& parts);

}  // namespace strata::parallel
