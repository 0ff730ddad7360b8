#include "growth/g_stack.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::growth {

int64_t layer_of(const std::string& key) {
  auto p = key.find("blocks.");
  if (p == std::string::npos || (p > 0 && key[p - 1] != '.')) return -1;
  auto b = p + 7, e = key.find('.', b);
  if (e == std::string::npos || e == b) return -1;
  for (auto i = b; i < e; ++i)
    if (key[i] < '0' || key[i] > '9') return -1;
  return std::stoll(key.substr(b, e - b));
}

std::string with_layer(const std::string& key, int64_t layer) {
  auto b = key.find("blocks.") + 7, e = key.find('.', b);
  return key.substr(0, b) + std::to_string(layer) + key.substr(e);
}

std::vector<int64_t> stacking_list(int64_t source_layers, int64_t target_layers) {
  if (source_layers < 1 || target_layers < source_layers)
    fail("growth: cannot stack {} layers into {} (the target must have at least as many)", source_layers, target_layers);
  std::vector<int64_t> out;
  const int64_t k = target_layers / source_layers, r = target_layers - k * source_layers;
  for (int64_t c = 0; c < k; ++c)
    for (int64_t i = 0; i < source_layers; ++i) out.push_back(i);
  for (int64_t i = source_layers - r; i < source_layers; ++i) out.push_back(i);
  return out;
}

ParamMap g_stack(const ParamMap& source, int64_t source_layers, const std::vector<int64_t>& layers) {
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i] < 0 || layers[i] >= source_layers)
      fail("growth.layers[{}] = {} is not a layer of the {}-layer source model", i, layers[i], source_layers);
  ParamMap out;
  std::vector<bool> seen(source_layers, false);
  for (const auto& [key, t] : source) {
    const int64_t l = layer_of(key);
    if (l < 0) {
      out[key] = t.detach().clone();
      continue;
    }
    if (l >= source_layers) fail("growth: '{}' names layer {} but the source model has {} layers", key, l, source_layers);
    seen[l] = true;
    for (size_t i = 0; i < layers.size(); ++i)
      if (layers[i] == l) out[with_layer(key, static_cast<int64_t>(i))] = t.detach().clone();
  }
  for (int64_t l = 0; l < source_layers; ++l)
    if (!seen[l]) fail("growth: the source parameters have no tensors for layer {} (of {})", l, source_layers);
  return out;
}

}  // namespace strata::growth
