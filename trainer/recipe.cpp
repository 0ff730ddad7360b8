#include "trainer/recipe.hpp"

#include <filesystem>
#include <map>
#include <set>

#include <yaml-cpp/yaml.h>

#include "core/error.hpp"
#include "trainer/recipe_schema.hpp"

namespace strata::trainer {
namespace {
namespace fs = std::filesystem;

struct Leaf {
  YAML::Node value;
  Origin origin;
};
using Flat = std::map<std::string, Leaf>;

std::string where(const std::string& file, const YAML::Node& n) {
  return n.Mark().line >= 0 ? fmt::format("{}:{}", file, n.Mark().line + 1) : file;
}

YAML::Node parse(const std::string& text, const std::string& name) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    fail("{}:{}: invalid YAML: {}", name, e.mark.line + 1, e.msg);
  }
}

// Flattens `node` into dotted keys, descending only into known sections.
void flatten(const YAML::Node& node, const std::string& prefix, const std::string& file, Flat& out) {
  const auto& schema = Schema::instance();
  for (const auto& kv : node) {
    std::string key = kv.first.as<std::string>();
    std::string path = prefix.empty() ? key : prefix + "." + key;
    const YAML::Node& v = kv.second;
    if (prefix.empty() && key == "include") continue;
    if (schema.is_section(path)) {
      if (v.IsNull()) continue;
      if (!v.IsMap()) fail("{}: '{}' is a section and expects a mapping of keys", where(file, kv.first), path);
      flatten(v, path, file, out);
      continue;
    }
    if (!schema.find(path)) {
      auto hint = schema.suggest(path);
      fail("{}: unknown key '{}'{}", where(file, kv.first), path,
           hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint));
    }
    out[path] = Leaf{v, Origin{where(file, v)}};
  }
}

void load_into(const YAML::Node& root, const std::string& file, const fs::path& base_dir, Flat& out,
               std::set<std::string>& visiting) {
  if (root.IsNull()) return;
  if (!root.IsMap()) fail("{}: a recipe must be a mapping of sections", file);
  if (auto inc = root["include"]) {
    std::vector<std::string> bases;
    if (inc.IsScalar()) bases.push_back(inc.as<std::string>());
    else if (inc.IsSequence()) for (const auto& e : inc) bases.push_back(e.as<std::string>());
    else fail("{}: 'include' expects a file name or a list of file names", where(file, inc));
    for (const auto& b : bases) {
      fs::path p = fs::path(b).is_absolute() ? fs::path(b) : base_dir / b;
      auto canon = fs::weakly_canonical(p).string();
      if (!fs::exists(p)) fail("{}: included recipe '{}' does not exist", where(file, inc), p.string());
      if (visiting.count(canon)) fail("{}: include cycle through '{}'", where(file, inc), p.string());
      visiting.insert(canon);
      YAML::Node sub;
      try {
        sub = YAML::LoadFile(p.string());
      } catch (const YAML::ParserException& e) {
        fail("{}:{}: invalid YAML: {}", p.string(), e.mark.line + 1, e.msg);
      }
      load_into(sub, p.string(), p.parent_path(), out, visiting);
      visiting.erase(canon);
    }
  }
  flatten(root, "", file, out);
}

void apply_override(const std::string& ov, Flat& out) {
  auto eq = ov.find('=');
  if (eq == std::string::npos || eq == 0) fail("--set '{}': expected section.key=value", ov);
  std::string key = ov.substr(0, eq);
  Origin origin{"--set " + key};
  const auto& schema = Schema::instance();
  if (!schema.find(key)) {
    auto hint = schema.suggest(key);
    fail("{}: unknown key '{}'{}", origin.where, key, hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint));
  }
  YAML::Node v;
  try {
    v = YAML::Load(ov.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    fail("{}: cannot parse value '{}': {}", origin.where, ov.substr(eq + 1), e.what());
  }
  if (v.IsNull()) v = YAML::Node(ov.substr(eq + 1));
  out[key] = Leaf{v, origin};
}

// Checks that involve several keys; `at` finds the origin of a key for the message.
void validate(const RunConfig& c, const Flat& flat) {
  auto at = [&](const std::string& key) {
    auto it = flat.find(key);
    return it == flat.end() ? std::string("recipe (default)") : it->second.origin.where;
  };
  const auto& m = c.model;
  if (m.d_model % m.n_head != 0)
    fail("{}: model.d_model = {} must be divisible by model.n_head = {}", at("model.n_head"), m.d_model, m.n_head);
  if (m.n_kv_head > 0 && m.n_head % m.n_kv_head != 0)
    fail("{}: model.n_head = {} must be a multiple of model.n_kv_head = {}", at("model.n_kv_head"), m.n_head, m.n_kv_head);
  if (c.train.seq_len > m.max_seq_len)
    fail("{}: train.seq_len = {} exceeds model.max_seq_len = {}", at("train.seq_len"), c.train.seq_len, m.max_seq_len);
}

RunConfig bind_config(const Flat& flat) {
  RunConfig cfg;
  const auto& schema = Schema::instance();
  for (const auto& [key, leaf] : flat) schema.find(key)->set(cfg, leaf.value, leaf.origin);
  validate(cfg, flat);
  return cfg;
}

}  // namespace

RunConfig load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  if (!fs::exists(path)) fail("recipe '{}' does not exist", path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::ParserException& e) {
    fail("{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
  Flat flat;
  std::set<std::string> visiting{fs::weakly_canonical(path).string()};
  load_into(root, path, fs::path(path).parent_path(), flat, visiting);
  for (const auto& ov : overrides) apply_override(ov, flat);
  return bind_config(flat);
}

RunConfig load_recipe_text(const std::string& text, const std::string& name, const std::vector<std::string>& overrides) {
  Flat flat;
  std::set<std::string> visiting;
  load_into(parse(text, name), name, fs::current_path(), flat, visiting);
  for (const auto& ov : overrides) apply_override(ov, flat);
  return bind_config(flat);
}

namespace {

// The keys under `prefix` ("growth."), a nested section (growth.two_stage.*) as a nested map.
void emit_section(YAML::Emitter& e, const Schema& schema, const RunConfig& cfg, const std::string& prefix) {
  std::set<std::string> nested;
  for (const auto& f : schema.fields()) {
    if (f.key.compare(0, prefix.size(), prefix) != 0) continue;
    const auto rest = f.key.substr(prefix.size());
    const auto dot = rest.find('.');
    if (dot == std::string::npos) {
      e << YAML::Key << rest << YAML::Value << f.get(cfg);
      continue;
    }
    const auto sub = rest.substr(0, dot);
    if (!nested.insert(sub).second) continue;
    e << YAML::Key << sub << YAML::Value << YAML::BeginMap;
    emit_section(e, schema, cfg, prefix + sub + ".");
    e << YAML::EndMap;
  }
}

}  // namespace

std::string dump_recipe(const RunConfig& cfg) {
  const auto& schema = Schema::instance();
  YAML::Emitter e;
  e << YAML::BeginMap;
  std::set<std::string> written;
  for (const auto& f : schema.fields()) {  // top-level sections in schema order; nested ones inside their parent
    const auto section = f.key.substr(0, f.key.find('.'));
    if (!written.insert(section).second) continue;
    e << YAML::Key << section << YAML::Value << YAML::BeginMap;
    emit_section(e, schema, cfg, section + ".");
    e << YAML::EndMap;
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace strata::trainer
