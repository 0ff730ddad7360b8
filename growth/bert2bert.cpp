#include "growth/bert2bert.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::growth {
namespace {

enum class Axis { Hidden, Heads, KvHeads, Ffn };

// How a parameter grows: which dim is out-expanded (copied) and which in-expanded (count-divided).
struct Role {
  int64_t out_dim = -1, in_dim = -1;
  Axis out_axis = Axis::Hidden, in_axis = Axis::Hidden;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Role role_of(const std::string& name) {
  auto linear = [&](Axis out, Axis in) {
    Role r;
    r.out_dim = 0, r.out_axis = out;
    if (ends_with(name, ".weight")) r.in_dim = 1, r.in_axis = in;  // [out, in]
    return r;
  };
  Role r;
  if (name == "tok_emb.weight" || name == "pos_emb" || name == "type_emb") {
    r.out_dim = 1;  // [rows, d]: the residual stream gets the duplicated units, no division
    return r;
  }
  if (name == "head.weight") {
    r.in_dim = 1;
    return r;
  }
  if (name == "mlm_bias") return r;
  if (name.find("attn.wq.") != std::string::npos) return linear(Axis::Heads, Axis::Hidden);
  if (name.find("attn.wk.") != std::string::npos || name.find("attn.wv.") != std::string::npos)
    return linear(Axis::KvHeads, Axis::Hidden);
  if (name.find("attn.wo.") != std::string::npos) return linear(Axis::Hidden, Axis::Heads);
  if (name.find("mlp.w1.") != std::string::npos || name.find("mlp.w3.") != std::string::npos)
    return linear(Axis::Ffn, Axis::Hidden);
  if (name.find("mlp.w2.") != std::string::npos) return linear(Axis::Hidden, Axis::Ffn);
  if (name.find("mlm_dense.") != std::string::npos) return linear(Axis::Hidden, Axis::Hidden);
  if (name.find("norm") != std::string::npos && (ends_with(name, ".weight") || ends_with(name, ".bias"))) {
    r.out_dim = 0;
    return r;
  }
  fail("growth (bert2bert): parameter '{}' has no known width role (expected GPT-2, Llama or BERT names)", name);
}

bool is_linear_in_block(const std::string& name) {
  return layer_of(name) >= 0 && (name.find(".attn.") != std::string::npos || name.find(".mlp.") != std::string::npos);
}

}  // namespace

WidthMaps make_width_maps(const models::ModelConfig& s, const models::ModelConfig& t, const std::string& kind, uint64_t seed) {
  if (s.arch != t.arch) fail("growth: source arch '{}' differs from the target's '{}'", s.arch, t.arch);
  if (s.vocab_size != t.vocab_size) fail("growth: vocab_size {} -> {}: the vocabulary cannot change", s.vocab_size, t.vocab_size);
  if (s.max_seq_len != t.max_seq_len && s.arch != "llama")
    fail("growth: max_seq_len {} -> {}: learned position tables must keep their length", s.max_seq_len, t.max_seq_len);
  if (s.head_dim() != t.head_dim())
    fail("growth (bert2bert): head_dim {} -> {}; grow n_head with d_model so head_dim stays fixed (spec §2.2)", s.head_dim(),
         t.head_dim());
  if (s.n_head / s.kv_heads() != t.n_head / t.kv_heads() || t.n_head % t.kv_heads() != 0)
    fail("growth (bert2bert): the GQA group size n_head/n_kv_head must stay the same ({}/{} -> {}/{})", s.n_head, s.kv_heads(),
         t.n_head, t.kv_heads());
  WidthMaps m;
  m.hidden = make_index_map(s.d_model, t.d_model, kind, seed);
  m.kv_heads = make_index_map(s.kv_heads(), t.kv_heads(), kind, seed + 1);
  const int64_t group = t.n_head / t.kv_heads();
  std::vector<int64_t> q;  // query head (j, r) <- (g_kv(j), r): copies keep their KV group
  for (int64_t j = 0; j < t.kv_heads(); ++j)
    for (int64_t r = 0; r < group; ++r) q.push_back(m.kv_heads.g[j] * group + r);
  m.heads = map_from_indices(std::move(q), s.n_head);
  m.ffn = make_index_map(s.ffn_hidden(), t.ffn_hidden(), kind, seed + 2);
  return m;
}

ParamMap widen(const ParamMap& source, int64_t source_layers, const WidthMaps& maps, int64_t head_dim, bool aki,
               bool untie_head) {
  const IndexMap q_units = expand_heads(maps.heads, head_dim), kv_units = expand_heads(maps.kv_heads, head_dim);
  auto unit_map = [&](Axis a) -> const IndexMap& {
    switch (a) {
      case Axis::Hidden: return maps.hidden;
      case Axis::Heads: return q_units;
      case Axis::KvHeads: return kv_units;
      default: return maps.ffn;
    }
  };
  ParamMap in_expanded, out;
  for (const auto& [name, t] : source) {
    const Role r = role_of(name);
    at::Tensor w = t.detach();
    if (r.in_dim >= 0) w = expand_in(w, r.in_dim, unit_map(r.in_axis));
    in_expanded[name] = w;
    out[name] = r.out_dim >= 0 ? expand_out(w, r.out_dim, unit_map(r.out_axis)) : w.clone();
  }
  if (aki) {  // new output units of layer l <- the upper layer's (in-expanded) units g_out(j)
    for (auto& [name, w] : out) {
      const int64_t l = layer_of(name);
      if (l < 0 || l + 1 >= source_layers || !is_linear_in_block(name)) continue;  // top layer: FPI
      const Role r = role_of(name);
      const auto& m = unit_map(r.out_axis);
      const int64_t n = m.source_size(), extra = m.target_size() - n;
      if (extra == 0) continue;
      auto upper = expand_out(in_expanded.at(with_layer(name, l + 1)), r.out_dim, m);
      w = at::cat({w.narrow(r.out_dim, 0, n), upper.narrow(r.out_dim, n, extra)}, r.out_dim);
    }
  }
  if (untie_head) {
    if (out.count("head.weight")) fail("growth: cannot untie the head: the source already has 'head.weight'");
    auto it = source.find("tok_emb.weight");
    if (it == source.end()) fail("growth: untying the head needs 'tok_emb.weight' in the source");
    out["head.weight"] = expand_in(it->second.detach(), 1, maps.hidden);  // E'/C^h: exact logits
  }
  return out;
}

}  // namespace strata::growth
