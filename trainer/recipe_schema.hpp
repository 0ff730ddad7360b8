// The recipe schema: every key a recipe may set, its type, its allowed values, and how it binds to
// RunConfig. A new feature adds its keys with one `add` line each in recipe_schema.cpp.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "trainer/run_config.hpp"

namespace strata::trainer {

// Where a value came from, for error messages: "recipes/x.yaml:12" or "--set train.steps".
struct Origin {
  std::string where;
};

struct Field {
  std::string key;   // "section.name"
  std::string type;  // human-readable type for messages
  std::function<void(RunConfig&, const YAML::Node&, const Origin&)> set;
  std::function<YAML::Node(const RunConfig&)> get;
};

class Schema {
 public:
  static const Schema& instance();
  const Field* find(const std::string& key) const;
  bool is_section(const std::string& key) const;
  const std::vector<Field>& fields() const { return fields_; }
  std::vector<std::string> sections() const;
  // The nearest known key (edit distance), for "did you mean" hints; empty if nothing is close.
  std::string suggest(const std::string& key) const;

  std::vector<Field> fields_;
};

}  // namespace strata::trainer
