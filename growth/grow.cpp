#include "growth/grow.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "growth/g_stack.hpp"

namespace strata::growth {

std::vector<int64_t> layers_from(const std::vector<double>& numbers) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < numbers.size(); ++i) {
    if (numbers[i] < 0 || numbers[i] != std::floor(numbers[i]))
      fail("growth.layers[{}] = {}: expected a layer index (a non-negative integer)", i, numbers[i]);
    out.push_back(static_cast<int64_t>(numbers[i]));
  }
  return out;
}

std::map<std::string, std::string> GrowthRecord::meta() const {
  std::map<std::string, std::string> m{{"growth.operator", op}, {"growth.layers", to_text(layers)}};
  if (width) {
    m["growth.map.hidden"] = to_text(width->hidden.g);
    m["growth.map.heads"] = to_text(width->heads.g);
    m["growth.map.kv_heads"] = to_text(width->kv_heads.g);
    m["growth.map.ffn"] = to_text(width->ffn.g);
  }
  return m;
}

models::ModelConfig source_config(const models::ModelConfig& target, const GrowthConfig& g) {
  models::ModelConfig s = target;
  if (g.op == "g_stack") {
    if (!g.layer_list.empty()) {
      const auto layers = layers_from(g.layer_list);
      s.n_layer = *std::max_element(layers.begin(), layers.end()) + 1;
    } else {
      if (g.factor < 2 || target.n_layer % g.factor != 0)
        fail("growth.factor = {}: g_stack needs a factor >= 2 that divides model.n_layer = {} (or growth.layers)", g.factor,
             target.n_layer);
      s.n_layer = target.n_layer / g.factor;
    }
  } else if (g.op == "bert2bert") {
    const int64_t k = g.factor;
    auto div = [&](int64_t v, const char* key) {
      if (k < 2 || v % k != 0) fail("growth.factor = {}: bert2bert needs a factor >= 2 that divides model.{} = {}", k, key, v);
      return v / k;
    };
    s.d_model = div(target.d_model, "d_model");
    s.n_head = div(target.n_head, "n_head");
    if (target.n_kv_head > 0) s.n_kv_head = div(target.n_kv_head, "n_kv_head");
    if (target.d_ff > 0) s.d_ff = div(target.d_ff, "d_ff");
    if (g.source_n_layer > 0) s.n_layer = g.source_n_layer;
  } else {
    fail("growth.operator = '{}': expected g_stack or bert2bert", g.op);
  }
  return s;
}

GrowResult grow(const ParamMap& source, const models::ModelConfig& s, const models::ModelConfig& t, const GrowthConfig& g) {
  if (s.arch != t.arch) fail("growth: source arch '{}' differs from the target's '{}'", s.arch, t.arch);
  if (!s.tie_embeddings && t.tie_embeddings)
    fail("growth: the source has an untied head but the target ties embeddings; set model.tie_embeddings = false");
  const bool untie = s.tie_embeddings && !t.tie_embeddings;
  GrowResult r;
  r.record.op = g.op;
  r.record.layers = g.layer_list.empty() ? stacking_list(s.n_layer, t.n_layer) : layers_from(g.layer_list);
  if (static_cast<int64_t>(r.record.layers.size()) != t.n_layer)
    fail("growth.layers has {} entries but the target has model.n_layer = {}", r.record.layers.size(), t.n_layer);
  ParamMap widened;
  if (g.op == "g_stack") {
    if (s.d_model != t.d_model || s.n_head != t.n_head || s.kv_heads() != t.kv_heads() || s.ffn_hidden() != t.ffn_hidden() ||
        s.vocab_size != t.vocab_size || (s.max_seq_len != t.max_seq_len && s.arch != "llama"))
      fail("growth.operator = g_stack grows depth only, but the width differs (d_model {} -> {}, n_head {} -> {}, "
           "d_ff {} -> {}); use bert2bert",
           s.d_model, t.d_model, s.n_head, t.n_head, s.ffn_hidden(), t.ffn_hidden());
    widened = source;
    if (untie) {
      auto it = source.find("tok_emb.weight");
      if (it == source.end()) fail("growth: untying the head needs 'tok_emb.weight' in the source");
      widened["head.weight"] = it->second;
    }
  } else if (g.op == "bert2bert") {
    auto maps = make_width_maps(s, t, g.map, static_cast<uint64_t>(g.seed));
    widened = widen(source, s.n_layer, maps, s.head_dim(), g.aki, untie);
    r.record.width = std::move(maps);
  } else {
    fail("growth.operator = '{}': expected g_stack or bert2bert", g.op);
  }
  r.params = g_stack(widened, s.n_layer, r.record.layers);  // identity list when the depth is unchanged
  return r;
}

}  // namespace strata::growth
