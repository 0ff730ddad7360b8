// LinUpper: f(x) = min(x + delta, delta). Rises linearly from 0 at the lowest loss to delta at the
// mid-range and is flat above it: low-loss samples are down-weighted, very-high-loss ones capped.
#include <ATen/ATen.h>

#include "reweighting/strategy.hpp"

namespace strata::reweighting {
namespace {
class LinUpper final : public Strategy {
 public:
  std::string name() const override { return "linupper"; }
  at::Tensor shape(const at::Tensor& x, double delta) const override { return at::clamp_max(x + delta, delta); }
};
}  // namespace
std::unique_ptr<Strategy> make_linupper() { return std::make_unique<LinUpper>(); }
}  // namespace strata::reweighting
