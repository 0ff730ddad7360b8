#include "snapshot/device_stage.hpp"

#include <algorithm>

#include <ATen/ATen.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

namespace strata::snapshot {

DeviceStager::Side& DeviceStager::side_of(c10::Device d) {
  for (auto& [dev, side] : sides_)
    if (dev == d) return side;
  c10::impl::VirtualGuardImpl impl(d.type());
  sides_.emplace_back(d, Side{impl.getStreamFromGlobalPool(d, /*isHighPriority=*/false), {}});
  return sides_.back().second;
}

bool DeviceStager::stage(checkpoint::CheckpointState& st) {
  wait();
  std::vector<c10::Device> used;
  for (auto& [name, t] : st.tensors) {
    if (!t.defined() || t.device().is_cpu()) continue;
    const c10::Device dev = t.device();
    Side& side = side_of(dev);
    if (std::find(used.begin(), used.end(), dev) == used.end()) {
      used.push_back(dev);
      // The side stream starts after everything queued so far on the device's current stream.
      c10::impl::VirtualGuardImpl impl(dev.type());
      c10::Event produced(dev.type());
      produced.record(impl.getStream(dev));
      produced.block(side.stream);
    }
    at::Tensor& buf = pinned_[name];
    if (!buf.defined() || !buf.sizes().equals(t.sizes()) || buf.scalar_type() != t.scalar_type())
      buf = at::empty(t.sizes(), at::TensorOptions().dtype(t.scalar_type()).pinned_memory(true));
    {
      c10::StreamGuard on_side(side.stream);
      buf.copy_(t.detach(), /*non_blocking=*/true);
    }
    sources_.push_back(t);
    t = buf;
  }
  for (const auto& dev : used) {
    Side& side = side_of(dev);
    side.done.emplace_back(dev.type());
    side.done.back().record(side.stream);
  }
  return !used.empty();
}

void DeviceStager::wait() {
  for (auto& [dev, side] : sides_) {
    for (auto& e : side.done) e.synchronize();
    side.done.clear();
  }
  sources_.clear();
}

int64_t DeviceStager::pinned_bytes() const {
  int64_t n = 0;
  for (const auto& [name, t] : pinned_) n += static_cast<int64_t>(t.nbytes());
  return n;
}

}  // namespace strata::snapshot
