// Extremes: f(x) = |x|. Favours both the lowest and the highest losses; minimal at the mid-range.
#include <ATen/ATen.h>

#include "reweighting/strategy.hpp"

namespace strata::reweighting {
namespace {
class Extremes final : public Strategy {
 public:
  std::string name() const override { return "extremes"; }
  at::Tensor shape(const at::Tensor& x, double) const override { return at::abs(x); }
};
}  // namespace
std::unique_ptr<Strategy> make_extremes() { return std::make_unique<Extremes>(); }
}  // namespace strata::reweighting
