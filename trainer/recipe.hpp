// Loading recipes: YAML files with `include:` of base recipes, `--set key=value` overrides, typed
// binding into RunConfig, and errors that name the file, line and key.
#pragma once
#include <string>
#include <vector>

#include "trainer/run_config.hpp"

namespace strata::trainer {

// Loads `path`, applies overrides of the form "section.key=value" in order, validates, returns.
RunConfig load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});
// Same, from YAML text (name is used in messages).
RunConfig load_recipe_text(const std::string& text, const std::string& name,
                           const std::vector<std::string>& overrides = {});
// The resolved recipe as YAML (every key, defaults included).
std::string dump_recipe(const RunConfig& cfg);

}  // namespace strata::trainer
