#include "trainer/hf_interchange.hpp"

#include <unistd.h>

#include <set>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/autograd.h>
#include <yaml-cpp/yaml.h>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/safetensors.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "models/hf.hpp"
#include "models/language_model.hpp"
#include "trainer/recipe.hpp"
#include "trainer/recipe_schema.hpp"

namespace strata::trainer {
namespace fs = std::filesystem;

fs::path resolve_checkpoint(const fs::path& p) {
  if (fs::exists(p / "manifest.pb")) return p;
  if (auto latest = checkpoint::latest_checkpoint(p / "checkpoints")) return *latest;
  fail("'{}' is neither a checkpoint directory (manifest.pb) nor a run directory with checkpoints/step_N", p.string());
}

void write_hf_dir(const models::ModelConfig& cfg, const std::map<std::string, at::Tensor>& params, const fs::path& out) {
  auto tensors = models::hf::to_hf(cfg, params);
  auto config = models::hf::config_json(cfg);  // fails before anything is written for inexpressible configs
  fs::create_directories(out);
  checkpoint::write_safetensors(out / "model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomic(out / "config.json", config);
}

HfModel read_hf_dir(const fs::path& dir) {
  const fs::path cfg_path = dir / "config.json";
  if (!fs::exists(cfg_path)) fail("hf import: '{}' has no config.json", dir.string());
  HfModel m;
  m.cfg = models::hf::config_from_json(read_file(cfg_path), cfg_path.string());
  std::vector<fs::path> files;
  if (fs::exists(dir / "model.safetensors")) {
    files.push_back(dir / "model.safetensors");
  } else if (fs::exists(dir / "model.safetensors.index.json")) {
    auto idx_path = dir / "model.safetensors.index.json";
    nlohmann::json idx;
    try {
      idx = nlohmann::json::parse(read_file(idx_path));
    } catch (const nlohmann::json::exception& e) {
      fail("hf import: {} is not valid JSON: {}", idx_path.string(), e.what());
    }
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      fail("hf import: {} has no weight_map object", idx_path.string());
    std::set<std::string> shards;
    for (const auto& [_, f] : idx["weight_map"].items()) {
      auto name = f.get<std::string>();
      if (name.find('/') != std::string::npos) fail("hf import: {} names a shard outside the directory: {}", idx_path.string(), name);
      shards.insert(name);
    }
    for (const auto& s : shards) files.push_back(dir / s);
  } else {
    fail("hf import: '{}' has neither model.safetensors nor model.safetensors.index.json", dir.string());
  }
  std::map<std::string, at::Tensor> all;
  for (const auto& f : files)
    for (auto& [k, v] : checkpoint::read_safetensors(f).tensors) {
      if (all.count(k)) fail("hf import: tensor '{}' appears in more than one shard ({})", k, f.string());
      all[k] = v.to(at::kFloat);  // master weights are fp32 (bf16/fp16 checkpoints are widened exactly)
    }
  m.params = models::hf::from_hf(m.cfg, all, dir.string());
  // Check names and shapes against the model the config builds.
  auto model = models::make_model(m.cfg);
  std::set<std::string> expected;
  for (const auto& kv : model->named_parameters()) {
    expected.insert(kv.key());
    auto it = m.params.find(kv.key());
    if (it == m.params.end()) fail("hf import: {} gives no tensor for parameter '{}'", dir.string(), kv.key());
    if (!it->second.sizes().equals(kv.value().sizes()))
      fail("hf import: {}: parameter '{}' has shape {} but config.json implies {}", dir.string(), kv.key(), it->second.sizes(),
           kv.value().sizes());
  }
  for (const auto& [k, _] : m.params)
    if (!expected.count(k)) fail("hf import: {}: tensor for '{}' matches no parameter of the model", dir.string(), k);
  return m;
}

void export_hf(const fs::path& run_or_checkpoint, const fs::path& out) {
  auto dir = resolve_checkpoint(run_or_checkpoint);
  auto st = checkpoint::load_checkpoint(dir);
  RunConfig cfg = load_recipe_text(st.config_yaml, dir.string() + "/manifest.pb:config");
  std::map<std::string, at::Tensor> params;
  for (const auto& [k, v] : st.tensors)
    if (k.rfind("model.", 0) == 0) params[k.substr(6)] = v;
  write_hf_dir(cfg.model, params, out);
  spdlog::info("export: {} ({} {}, step {}) -> {}/model.safetensors + config.json", dir.string(), cfg.model.arch,
               cfg.model.arch == "gpt" ? "GPT2LMHeadModel" : cfg.model.arch == "llama" ? "LlamaForCausalLM" : "BertForMaskedLM",
               st.step, out.string());
}

void import_hf(const fs::path& hf_dir, const fs::path& out) {
  auto m = read_hf_dir(hf_dir);
  RunConfig rc;
  rc.model = m.cfg;
  rc.train.seq_len = std::min<int64_t>(rc.train.seq_len, m.cfg.max_seq_len);
  checkpoint::CheckpointState st;
  st.step = 0;
  st.config_yaml = dump_recipe(rc);
  st.meta["imported_from"] = fs::absolute(hf_dir).string();
  for (const auto& [k, v] : m.params) st.tensors["model." + k] = v;
  // save_checkpoint publishes <root>/step_0 atomically; move it onto `out`.
  fs::path abs_out = fs::absolute(out);
  fs::path root = abs_out.parent_path() / fmt::format(".import_tmp.{}", ::getpid());
  if (fs::exists(abs_out)) fail("import: '{}' already exists (remove it or pick another --out)", abs_out.string());
  auto step_dir = checkpoint::save_checkpoint(root, st);
  publish_directory(step_dir, abs_out);
  fs::remove_all(root);
  // The recipe fragment: every model key, and where the weights come from.
  YAML::Emitter e;
  e << YAML::BeginMap << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  for (const auto& f : Schema::instance().fields())
    if (f.key.rfind("model.", 0) == 0) e << YAML::Key << f.key.substr(6) << YAML::Value << f.get(rc);
  e << YAML::EndMap << YAML::Key << "train" << YAML::Value << YAML::BeginMap << YAML::Key << "init_from" << YAML::Value
    << abs_out.string() << YAML::EndMap << YAML::EndMap;
  write_file_atomic(abs_out / "model.yaml", fmt::format("# Imported from {} by `strata import`. To continue pretraining,\n"
                                                        "# `include:` this file in a recipe (it sets the model and train.init_from).\n{}\n",
                                                        fs::absolute(hf_dir).string(), e.c_str()));
  spdlog::info("import: {} ({}, {:.2f}M parameters) -> checkpoint {} ; recipe fragment {}/model.yaml", hf_dir.string(),
               m.cfg.arch, [&] {
                 double n = 0;
                 for (const auto& [_, v] : m.params) n += v.numel();
                 return n / 1e6;
               }(),
               abs_out.string(), abs_out.string());
}

void load_model_weights(const fs::path& run_or_checkpoint, const std::vector<std::pair<std::string, at::Tensor>>& params) {
  auto dir = resolve_checkpoint(run_or_checkpoint);
  auto st = checkpoint::load_checkpoint(dir);
  torch::NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    auto it = st.tensors.find("model." + name);
    if (it == st.tensors.end()) fail("train.init_from: checkpoint '{}' has no tensor 'model.{}'", dir.string(), name);
    if (!it->second.sizes().equals(p.sizes()))
      fail("train.init_from: checkpoint '{}': 'model.{}' has shape {} but the model expects {} (different model config?)",
           dir.string(), name, it->second.sizes(), p.sizes());
    p.copy_(it->second);
  }
  spdlog::info("train.init_from: model weights from {}", dir.string());
}

}  // namespace strata::trainer
