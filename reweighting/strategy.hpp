// Shaping functions f(x) of the normalised loss x in [-delta, delta] (specs/reweighting.md §2.4),
// kept in a registry by name. A strategy is one file under strategies/ plus one line in
// registry.cpp.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace strata::reweighting {

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  // f applied elementwise to x (any floating dtype); the result has x's shape and dtype.
  virtual at::Tensor shape(const at::Tensor& x, double delta) const = 0;
};

using StrategyFactory = std::function<std::unique_ptr<Strategy>()>;

// Fails naming the known strategies when `name` is not registered; `where` prefixes the message.
std::unique_ptr<Strategy> make_strategy(const std::string& name, const std::string& where = "reweighting.strategy");
std::vector<std::string> strategy_names();
// Adds (or replaces) a strategy, e.g. from a plugin or a test.
void register_strategy(const std::string& name, StrategyFactory factory);

// The built-in strategies (one file each under strategies/).
std::unique_ptr<Strategy> make_uniform();    // f = 0: every weight is 1/n
std::unique_ptr<Strategy> make_linupper();   // f = min(x + delta, delta)
std::unique_ptr<Strategy> make_quadratic();  // f = 1 - x^2 / delta^2 (the reference's "mid")
std::unique_ptr<Strategy> make_extremes();   // f = |x|

}  // namespace strata::reweighting
