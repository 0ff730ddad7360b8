#include <functional>
#include <map>

#include "core/error.hpp"
#include "optim/adamw.hpp"
#include "optim/optimizer.hpp"
#include "optim/sophia.hpp"

namespace strata::optim {

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, std::vector<ParamGroup> groups) {
  using Factory = std::function<std::unique_ptr<Optimizer>(const OptimConfig&, std::vector<ParamGroup>)>;
  static const std::map<std::string, Factory> registry = {
      {"adamw",
       [](const OptimConfig& c, std::vector<ParamGroup> g) {
         return std::make_unique<AdamW>(std::move(g), c.betas.at(0), c.betas.at(1), c.eps, c.fused);
       }},
      {"sophia",
       [](const OptimConfig& c, std::vector<ParamGroup> g) {
         return std::make_unique<Sophia>(std::move(g), c.betas.at(0), c.betas.at(1), c.rho, c.hessian_interval,
                                         parse_estimator(c.hessian_estimator));
       }},
  };
  auto it = registry.find(cfg.name);
  if (it == registry.end()) {
    std::string names;
    for (const auto& [k, _] : registry) names += (names.empty() ? "" : ", ") + k;
    fail("optim.name '{}' is not a registered optimizer (available: {})", cfg.name, names);
  }
  return it->second(cfg, std::move(groups));
}

}  // namespace strata::optim
