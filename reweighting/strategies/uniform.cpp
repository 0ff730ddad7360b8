// uniform: f(x) = 0, so every weight is 1/n (no reweighting; the control run).
#include <ATen/ATen.h>

#include "reweighting/strategy.hpp"

namespace strata::reweighting {
namespace {
class Uniform final : public Strategy {
 public:
  std::string name() const override { return "uniform"; }
  at::Tensor shape(const at::Tensor& x, double) const override { return at::zeros_like(x); }
};
}  // namespace
std::unique_ptr<Strategy> make_uniform() { return std::make_unique<Uniform>(); }
}  // namespace strata::reweighting
