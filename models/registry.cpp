#include <functional>
#include <map>

#include "core/error.hpp"
#include "models/bert.hpp"
#include "models/gpt.hpp"
#include "models/llama.hpp"
#include "models/language_model.hpp"

namespace strata::models {

std::shared_ptr<LanguageModel> make_model(const ModelConfig& cfg) {
  using Factory = std::function<std::shared_ptr<LanguageModel>(const ModelConfig&)>;
  static const std::map<std::string, Factory> registry = {
      {"gpt", [](const ModelConfig& c) { return std::make_shared<Gpt>(c); }},
      {"llama", [](const ModelConfig& c) { return std::make_shared<Llama>(c); }},
      {"bert", [](const ModelConfig& c) { return std::make_shared<Bert>(c); }},
  };
  auto it = registry.find(cfg.arch);
  if (it == registry.end()) fail("model.arch '{}' is not built into this Strata (available: gpt, llama, bert)", cfg.arch);
  return it->second(cfg);
}

}  // namespace strata::models
