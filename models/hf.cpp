#include "models/hf.hpp"

#include <functional>
#include <set>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace strata::models::hf {
namespace {

using nlohmann::json;

enum class Layout { Same, Transpose, QRows, KRows };

struct Entry {
  std::string strata, hf;
  Layout layout = Layout::Same;
};

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

// Weight and (when the config has biases) bias entries of one layer.
void layer(std::vector<Entry>& v, const std::string& s, const std::string& h, bool bias, Layout wl = Layout::Same,
           bool rms = false) {
  v.push_back({s + ".weight", h + ".weight", wl});
  // A bias is never transposed; q/k biases are permuted like their rows.
  if (bias && !rms) v.push_back({s + ".bias", h + ".bias", wl == Layout::Transpose ? Layout::Same : wl});
}

// The one-to-one tensors of each architecture (GPT-2's fused c_attn is handled separately).
std::vector<Entry> entries(const ModelConfig& c) {
  std::vector<Entry> v;
  const bool b = c.bias;
  if (c.arch == "gpt") {
    v.push_back({"tok_emb.weight", "transformer.wte.weight"});
    v.push_back({"pos_emb", "transformer.wpe.weight"});
    for (int64_t i = 0; i < c.n_layer; ++i) {
      const std::string s = fmt::format("blocks.{}.", i), h = fmt::format("transformer.h.{}.", i);
      layer(v, s + "norm1", h + "ln_1", b);
      layer(v, s + "attn.wo", h + "attn.c_proj", b, Layout::Transpose);
      layer(v, s + "norm2", h + "ln_2", b);
      layer(v, s + "mlp.w1", h + "mlp.c_fc", b, Layout::Transpose);
      layer(v, s + "mlp.w2", h + "mlp.c_proj", b, Layout::Transpose);
    }
    layer(v, "norm_f", "transformer.ln_f", b);
    if (!c.tie_embeddings) v.push_back({"head.weight", "lm_head.weight"});
  } else if (c.arch == "llama") {
    v.push_back({"tok_emb.weight", "model.embed_tokens.weight"});
    for (int64_t i = 0; i < c.n_layer; ++i) {
      const std::string s = fmt::format("blocks.{}.", i), h = fmt::format("model.layers.{}.", i);
      layer(v, s + "norm1", h + "input_layernorm", b, Layout::Same, /*rms=*/true);
      layer(v, s + "attn.wq", h + "self_attn.q_proj", b, Layout::QRows);
      layer(v, s + "attn.wk", h + "self_attn.k_proj", b, Layout::KRows);
      layer(v, s + "attn.wv", h + "self_attn.v_proj", b);
      layer(v, s + "attn.wo", h + "self_attn.o_proj", b);
      layer(v, s + "norm2", h + "post_attention_layernorm", b, Layout::Same, true);
      layer(v, s + "mlp.w1", h + "mlp.gate_proj", b);
      layer(v, s + "mlp.w3", h + "mlp.up_proj", b);
      layer(v, s + "mlp.w2", h + "mlp.down_proj", b);
    }
    layer(v, "norm_f", "model.norm", b, Layout::Same, true);
    if (!c.tie_embeddings) v.push_back({"head.weight", "lm_head.weight"});
  } else if (c.arch == "bert") {
    v.push_back({"tok_emb.weight", "bert.embeddings.word_embeddings.weight"});
    v.push_back({"pos_emb", "bert.embeddings.position_embeddings.weight"});
    v.push_back({"type_emb", "bert.embeddings.token_type_embeddings.weight"});
    layer(v, "emb_norm", "bert.embeddings.LayerNorm", b);
    for (int64_t i = 0; i < c.n_layer; ++i) {
      const std::string s = fmt::format("blocks.{}.", i), h = fmt::format("bert.encoder.layer.{}.", i);
      layer(v, s + "attn.wq", h + "attention.self.query", b);
      layer(v, s + "attn.wk", h + "attention.self.key", b);
      layer(v, s + "attn.wv", h + "attention.self.value", b);
      layer(v, s + "attn.wo", h + "attention.output.dense", b);
      layer(v, s + "norm1", h + "attention.output.LayerNorm", b);
      layer(v, s + "mlp.w1", h + "intermediate.dense", b);
      layer(v, s + "mlp.w2", h + "output.dense", b);
      layer(v, s + "norm2", h + "output.LayerNorm", b);
    }
    layer(v, "mlm_dense", "cls.predictions.transform.dense", b);
    layer(v, "mlm_norm", "cls.predictions.transform.LayerNorm", b);
    v.push_back({"mlm_bias", "cls.predictions.bias"});
  } else {
    fail("hf: architecture '{}' has no Hugging Face mapping", c.arch);
  }
  return v;
}

at::Tensor to_hf_layout(const at::Tensor& t, Layout l, const ModelConfig& c) {
  switch (l) {
    case Layout::Same: return t;
    case Layout::Transpose: return t.t().contiguous();
    case Layout::QRows: return meta_to_hf_rows(t, c.n_head);
    case Layout::KRows: return meta_to_hf_rows(t, c.kv_heads());
  }
  return t;
}

at::Tensor from_hf_layout(const at::Tensor& t, Layout l, const ModelConfig& c) {
  switch (l) {
    case Layout::Same: return t;
    case Layout::Transpose: return t.t().contiguous();
    case Layout::QRows: return hf_to_meta_rows(t, c.n_head);
    case Layout::KRows: return hf_to_meta_rows(t, c.kv_heads());
  }
  return t;
}

// Canonical HF name: adds the base-model prefix old checkpoints omit, renames gamma/beta.
std::string canonical(const ModelConfig& c, std::string n) {
  if (ends_with(n, ".gamma")) n = n.substr(0, n.size() - 6) + ".weight";
  if (ends_with(n, ".beta")) n = n.substr(0, n.size() - 5) + ".bias";
  if (c.arch == "gpt" && !starts_with(n, "transformer.") && !starts_with(n, "lm_head.")) n = "transformer." + n;
  if (c.arch == "bert" && !starts_with(n, "bert.") && !starts_with(n, "cls.")) n = "bert." + n;
  return n;
}

// Tensors HF files may hold that are not Strata parameters (buffers, tied copies, other heads).
bool skipped(const ModelConfig& c, const std::string& n) {
  if (c.arch == "gpt") return ends_with(n, ".attn.bias") || ends_with(n, ".attn.masked_bias") || (c.tie_embeddings && n == "lm_head.weight");
  if (c.arch == "llama") return ends_with(n, "rotary_emb.inv_freq") || (c.tie_embeddings && n == "lm_head.weight");
  if (c.arch == "bert")
    return n == "bert.embeddings.position_ids" || starts_with(n, "bert.pooler.") || starts_with(n, "cls.seq_relationship.") ||
           n == "cls.predictions.decoder.weight" || n == "cls.predictions.decoder.bias";
  return false;
}

}  // namespace

at::Tensor meta_to_hf_rows(const at::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), hd = rows / heads;
  auto shape = w.sizes().vec();
  std::vector<int64_t> v = {heads, hd / 2, 2};
  v.insert(v.end(), shape.begin() + 1, shape.end());
  return w.reshape(v).transpose(1, 2).reshape(shape).contiguous();
}

at::Tensor hf_to_meta_rows(const at::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), hd = rows / heads;
  auto shape = w.sizes().vec();
  std::vector<int64_t> v = {heads, 2, hd / 2};
  v.insert(v.end(), shape.begin() + 1, shape.end());
  return w.reshape(v).transpose(1, 2).reshape(shape).contiguous();
}

TensorMap to_hf(const ModelConfig& c, const TensorMap& params) {
  TensorMap out;
  std::set<std::string> used;
  auto get = [&](const std::string& name) -> const at::Tensor& {
    auto it = params.find(name);
    if (it == params.end()) fail("hf export: the model has no parameter '{}' (arch {})", name, c.arch);
    used.insert(name);
    return it->second;
  };
  for (const auto& e : entries(c)) out[e.hf] = to_hf_layout(get(e.strata), e.layout, c);
  if (c.arch == "gpt") {
    for (int64_t i = 0; i < c.n_layer; ++i) {
      const std::string s = fmt::format("blocks.{}.attn.", i), h = fmt::format("transformer.h.{}.attn.c_attn.", i);
      out[h + "weight"] = at::cat({get(s + "wq.weight"), get(s + "wk.weight"), get(s + "wv.weight")}, 0).t().contiguous();
      if (c.bias) out[h + "bias"] = at::cat({get(s + "wq.bias"), get(s + "wk.bias"), get(s + "wv.bias")}, 0);
    }
  }
  for (const auto& [name, _] : params)
    if (!used.count(name)) fail("hf export: parameter '{}' has no Hugging Face name (arch {})", name, c.arch);
  return out;
}

TensorMap from_hf(const ModelConfig& c, const TensorMap& tensors, const std::string& where) {
  TensorMap hf;
  for (const auto& [name, t] : tensors) {
    auto n = canonical(c, name);
    if (!skipped(c, n)) hf[n] = t;
  }
  std::set<std::string> used;
  auto get = [&](const std::string& name) -> const at::Tensor& {
    auto it = hf.find(name);
    if (it == hf.end()) fail("hf import {}: tensor '{}' is missing (arch {}, {} layers)", where, name, c.arch, c.n_layer);
    used.insert(name);
    return it->second;
  };
  TensorMap out;
  for (const auto& e : entries(c)) out[e.strata] = from_hf_layout(get(e.hf), e.layout, c);
  if (c.arch == "gpt") {
    const int64_t d = c.d_model, kv = c.kv_heads() * c.head_dim();
    for (int64_t i = 0; i < c.n_layer; ++i) {
      const std::string s = fmt::format("blocks.{}.attn.", i), h = fmt::format("transformer.h.{}.attn.c_attn.", i);
      auto w = get(h + "weight");
      if (w.dim() != 2 || w.size(0) != d || w.size(1) != d + 2 * kv)
        fail("hf import {}: '{}' has shape {}, expected [{}, {}]", where, h + "weight", w.sizes(), d, d + 2 * kv);
      auto parts = w.t().split_with_sizes({d, kv, kv}, 0);
      out[s + "wq.weight"] = parts[0].contiguous();
      out[s + "wk.weight"] = parts[1].contiguous();
      out[s + "wv.weight"] = parts[2].contiguous();
      if (c.bias) {
        auto bp = get(h + "bias").split_with_sizes({d, kv, kv}, 0);
        out[s + "wq.bias"] = bp[0].contiguous();
        out[s + "wk.bias"] = bp[1].contiguous();
        out[s + "wv.bias"] = bp[2].contiguous();
      }
    }
  }
  for (const auto& [name, _] : hf)
    if (!used.count(name)) fail("hf import {}: tensor '{}' has no place in a Strata {} model", where, name, c.arch);
  return out;
}

std::string config_json(const ModelConfig& c) {
  nlohmann::ordered_json j;
  if (c.arch == "gpt") {
    if (!c.bias) fail("hf export: GPT2LMHeadModel always has biases; model.bias = false cannot be exported");
    if (c.kv_heads() != c.n_head) fail("hf export: GPT2LMHeadModel has no grouped-query attention (model.n_kv_head)");
    j["architectures"] = {"GPT2LMHeadModel"};
    j["model_type"] = "gpt2";
    j["vocab_size"] = c.vocab_size;
    j["n_positions"] = c.max_seq_len;
    j["n_embd"] = c.d_model;
    j["n_layer"] = c.n_layer;
    j["n_head"] = c.n_head;
    j["n_inner"] = c.d_ff > 0 ? nlohmann::ordered_json(c.d_ff) : nlohmann::ordered_json(nullptr);
    j["activation_function"] = "gelu_new";
    j["resid_pdrop"] = j["embd_pdrop"] = j["attn_pdrop"] = c.dropout;
    j["layer_norm_epsilon"] = c.norm_eps;
    j["initializer_range"] = c.init_std;
    j["tie_word_embeddings"] = c.tie_embeddings;
  } else if (c.arch == "llama") {
    j["architectures"] = {"LlamaForCausalLM"};
    j["model_type"] = "llama";
    j["vocab_size"] = c.vocab_size;
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.ffn_hidden();
    j["num_hidden_layers"] = c.n_layer;
    j["num_attention_heads"] = c.n_head;
    j["num_key_value_heads"] = c.kv_heads();
    j["head_dim"] = c.head_dim();
    j["max_position_embeddings"] = c.max_seq_len;
    j["rms_norm_eps"] = c.norm_eps;
    j["rope_theta"] = c.rope_theta;
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
    j["hidden_act"] = "silu";
    j["attention_bias"] = c.bias;
    j["mlp_bias"] = c.bias;
    j["attention_dropout"] = c.dropout;
    j["initializer_range"] = c.init_std;
    j["tie_word_embeddings"] = c.tie_embeddings;
  } else if (c.arch == "bert") {
    if (!c.bias) fail("hf export: BertForMaskedLM always has biases; model.bias = false cannot be exported");
    if (c.kv_heads() != c.n_head) fail("hf export: BertForMaskedLM has no grouped-query attention (model.n_kv_head)");
    j["architectures"] = {"BertForMaskedLM"};
    j["model_type"] = "bert";
    j["vocab_size"] = c.vocab_size;
    j["hidden_size"] = c.d_model;
    j["num_hidden_layers"] = c.n_layer;
    j["num_attention_heads"] = c.n_head;
    j["intermediate_size"] = c.ffn_hidden();
    j["hidden_act"] = "gelu";
    j["hidden_dropout_prob"] = j["attention_probs_dropout_prob"] = c.dropout;
    j["max_position_embeddings"] = c.max_seq_len;
    j["type_vocab_size"] = c.type_vocab_size;
    j["layer_norm_eps"] = c.norm_eps;
    j["initializer_range"] = c.init_std;
    j["position_embedding_type"] = "absolute";
    j["tie_word_embeddings"] = true;
  } else {
    fail("hf export: architecture '{}' has no Hugging Face mapping", c.arch);
  }
  j["torch_dtype"] = "float32";
  j["strata_arch"] = c.arch;
  return j.dump(2) + "\n";
}

ModelConfig config_from_json(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("hf import: {} is not valid JSON: {}", where, e.what());
  }
  auto num = [&](const char* key) -> const json& {
    if (!j.contains(key) || !j[key].is_number()) fail("hf import: {} lacks the number '{}'", where, key);
    return j[key];
  };
  auto opt = [&](const char* key, auto fallback) {
    using T = decltype(fallback);
    return j.contains(key) && !j[key].is_null() ? j[key].get<T>() : fallback;
  };
  const std::string type = j.value("model_type", "");
  ModelConfig c;
  c.init_std = opt("initializer_range", 0.02);
  if (type == "gpt2") {
    c.arch = "gpt";
    c.d_model = num("n_embd").get<int64_t>();
    c.n_layer = num("n_layer").get<int64_t>();
    c.n_head = num("n_head").get<int64_t>();
    c.max_seq_len = j.contains("n_positions") ? num("n_positions").get<int64_t>() : num("n_ctx").get<int64_t>();
    c.vocab_size = num("vocab_size").get<int64_t>();
    c.d_ff = opt("n_inner", int64_t{0});
    c.norm_eps = opt("layer_norm_epsilon", 1e-5);
    c.dropout = opt("resid_pdrop", 0.0);
    c.tie_embeddings = opt("tie_word_embeddings", true);
    c.bias = true;
    auto act = opt("activation_function", std::string("gelu_new"));
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
      fail("hf import: {}: activation_function '{}' is not GPT-2's tanh GELU (gelu_new)", where, act);
  } else if (type == "llama") {
    c.arch = "llama";
    c.d_model = num("hidden_size").get<int64_t>();
    c.n_layer = num("num_hidden_layers").get<int64_t>();
    c.n_head = num("num_attention_heads").get<int64_t>();
    c.n_kv_head = opt("num_key_value_heads", c.n_head);
    c.d_ff = num("intermediate_size").get<int64_t>();
    c.vocab_size = num("vocab_size").get<int64_t>();
    c.max_seq_len = num("max_position_embeddings").get<int64_t>();
    c.norm_eps = opt("rms_norm_eps", 1e-6);
    c.rope_theta = opt("rope_theta", 10000.0);
    for (const char* key : {"rope_parameters", "rope_scaling"}) {
      if (!j.contains(key) || j[key].is_null()) continue;
      const auto& r = j[key];
      auto rtype = r.value("rope_type", r.value("type", std::string("default")));
      if (rtype != "default")
        fail("hf import: {}: {}.rope_type '{}' (scaled RoPE) is not supported; Strata implements plain RoPE", where, key, rtype);
      if (r.contains("rope_theta")) c.rope_theta = r["rope_theta"].get<double>();
    }
    c.tie_embeddings = opt("tie_word_embeddings", false);
    c.bias = opt("attention_bias", false);
    if (opt("mlp_bias", false) != c.bias)
      fail("hf import: {}: attention_bias and mlp_bias differ; Strata's model.bias covers both", where);
    c.dropout = opt("attention_dropout", 0.0);
    if (opt("hidden_act", std::string("silu")) != "silu") fail("hf import: {}: hidden_act must be 'silu' for Llama", where);
    if (j.contains("head_dim") && !j["head_dim"].is_null() && j["head_dim"].get<int64_t>() * c.n_head != c.d_model)
      fail("hf import: {}: head_dim {} x {} heads != hidden_size {} (not supported)", where, j["head_dim"].get<int64_t>(),
           c.n_head, c.d_model);
  } else if (type == "bert") {
    c.arch = "bert";
    c.d_model = num("hidden_size").get<int64_t>();
    c.n_layer = num("num_hidden_layers").get<int64_t>();
    c.n_head = num("num_attention_heads").get<int64_t>();
    c.d_ff = num("intermediate_size").get<int64_t>();
    c.vocab_size = num("vocab_size").get<int64_t>();
    c.max_seq_len = num("max_position_embeddings").get<int64_t>();
    c.type_vocab_size = opt("type_vocab_size", int64_t{2});
    c.norm_eps = opt("layer_norm_eps", 1e-12);
    c.dropout = opt("hidden_dropout_prob", 0.1);
    c.tie_embeddings = true;
    c.bias = true;
    if (opt("hidden_act", std::string("gelu")) != "gelu") fail("hf import: {}: hidden_act must be 'gelu' (erf) for BERT", where);
    if (opt("position_embedding_type", std::string("absolute")) != "absolute")
      fail("hf import: {}: only absolute position embeddings are supported", where);
  } else {
    fail("hf import: {}: model_type '{}' is not one of gpt2, llama, bert", where, type);
  }
  if (c.d_model % c.n_head != 0) fail("hf import: {}: hidden size {} is not divisible by {} heads", where, c.d_model, c.n_head);
  return c;
}

}  // namespace strata::models::hf
