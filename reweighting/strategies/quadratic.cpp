// Quadratic (the reference code's "mid"): f(x) = 1 - x^2 / delta^2. Favours mid-range losses and
// down-weights both extremes.
#include <ATen/ATen.h>

#include "reweighting/strategy.hpp"

namespace strata::reweighting {
namespace {
class Quadratic final : public Strategy {
 public:
  std::string name() const override { return "quadratic"; }
  at::Tensor shape(const at::Tensor& x, double delta) const override { return 1.0 - x * x / (delta * delta); }
};
}  // namespace
std::unique_ptr<Strategy> make_quadratic() { return std::make_unique<Quadratic>(); }
}  // namespace strata::reweighting
