// Index maps g: {0..n'-1} -> {0..n-1} for width growth (specs/growth.md §2.2) and the two
// expansions built from them: out-dim (copy) and in-dim (copy divided by the source unit's count).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace strata::growth {

struct IndexMap {
  std::vector<int64_t> g;       // g[i] for i < n'
  std::vector<int64_t> counts;  // C_j = |{i : g(i) = j}| for j < n
  int64_t source_size() const { return static_cast<int64_t>(counts.size()); }
  int64_t target_size() const { return static_cast<int64_t>(g.size()); }
};

// g(i) = i for i < n; for i >= n: i mod n (circular) or uniform in {0..n-1} from `seed` (random).
IndexMap make_index_map(int64_t n, int64_t n_target, const std::string& kind, uint64_t seed);
IndexMap map_from_indices(std::vector<int64_t> g, int64_t n);
// Unit-level map of a head map: unit (h', c) <- (g(h'), c) for c < head_dim.
IndexMap expand_heads(const IndexMap& heads, int64_t head_dim);

// Out-dim expansion: result.select(dim, i) = t.select(dim, g(i)).
at::Tensor expand_out(const at::Tensor& t, int64_t dim, const IndexMap& m);
// In-dim expansion: result.select(dim, i) = t.select(dim, g(i)) / C_{g(i)}.
at::Tensor expand_in(const at::Tensor& t, int64_t dim, const IndexMap& m);

std::string to_text(const std::vector<int64_t>& v);  // "0,1,2"

}  // namespace strata::growth
