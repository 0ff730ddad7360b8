#include "reweighting/strategy.hpp"

#include <map>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"

namespace strata::reweighting {
namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

// One line per built-in strategy.
std::map<std::string, StrategyFactory>& registry() {
  static std::map<std::string, StrategyFactory> r = {
      {"uniform", make_uniform},
      {"linupper", make_linupper},
      {"quadratic", make_quadratic},
      {"extremes", make_extremes},
  };
  return r;
}

std::vector<std::string> names_locked() {
  std::vector<std::string> out;
  for (const auto& kv : registry()) out.push_back(kv.first);
  return out;
}

}  // namespace

std::unique_ptr<Strategy> make_strategy(const std::string& name, const std::string& where) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto it = registry().find(name);
  if (it == registry().end())
    fail("{}: unknown reweighting strategy '{}' (known: {})", where, name, fmt::join(names_locked(), ", "));
  return it->second();
}

std::vector<std::string> strategy_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  return names_locked();
}

void register_strategy(const std::string& name, StrategyFactory factory) {
  if (name.empty() || !factory) fail("reweighting: register_strategy needs a name and a factory");
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[name] = std::move(factory);
}

}  // namespace strata::reweighting
