#include "growth/index_map.hpp"

#include <random>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::growth {

IndexMap map_from_indices(std::vector<int64_t> g, int64_t n) {
  IndexMap m;
  m.counts.assign(n, 0);
  for (size_t i = 0; i < g.size(); ++i) {
    if (g[i] < 0 || g[i] >= n) fail("growth: index map entry {} = {} is outside [0, {})", i, g[i], n);
    ++m.counts[g[i]];
  }
  for (int64_t j = 0; j < n; ++j)
    if (m.counts[j] == 0) fail("growth: index map never uses source unit {} (of {})", j, n);
  m.g = std::move(g);
  return m;
}

IndexMap make_index_map(int64_t n, int64_t n_target, const std::string& kind, uint64_t seed) {
  if (n < 1 || n_target < n) fail("growth: cannot grow a dimension of {} units to {} (the target must not be smaller)", n, n_target);
  std::vector<int64_t> g(n_target);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  for (int64_t i = 0; i < n_target; ++i) {
    if (i < n) g[i] = i;
    else if (kind == "circular") g[i] = i % n;
    else if (kind == "random") g[i] = pick(rng);
    else fail("growth.map = '{}': expected circular or random", kind);
  }
  return map_from_indices(std::move(g), n);
}

IndexMap expand_heads(const IndexMap& heads, int64_t head_dim) {
  std::vector<int64_t> g;
  g.reserve(heads.g.size() * head_dim);
  for (int64_t h : heads.g)
    for (int64_t c = 0; c < head_dim; ++c) g.push_back(h * head_dim + c);
  return map_from_indices(std::move(g), heads.source_size() * head_dim);
}

at::Tensor expand_out(const at::Tensor& t, int64_t dim, const IndexMap& m) {
  if (t.size(dim) != m.source_size())
    fail("growth: tensor of shape {} has {} units along dim {} but the index map expects {}", t.sizes(), t.size(dim), dim,
         m.source_size());
  auto idx = at::tensor(m.g, at::TensorOptions().dtype(at::kLong)).to(t.device());
  return t.index_select(dim, idx);
}

at::Tensor expand_in(const at::Tensor& t, int64_t dim, const IndexMap& m) {
  auto out = expand_out(t, dim, m);
  std::vector<double> div(m.g.size());
  for (size_t i = 0; i < m.g.size(); ++i) div[i] = static_cast<double>(m.counts[m.g[i]]);
  std::vector<int64_t> shape(t.dim(), 1);
  shape[dim] = static_cast<int64_t>(div.size());
  auto d = at::tensor(div, at::TensorOptions().dtype(at::kDouble)).to(t.device(), t.scalar_type()).view(shape);
  return out / d;
}

std::string to_text(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

}  // namespace strata::growth
