// bf16 autocast for forward passes (train.dtype = bf16; `strata bench-model --dtype bf16`) on the run's
// device type, CUDA or CPU: matmuls, attention and the other ops on ATen's lower-precision list run in
// bf16, master weights, gradients and optimizer state stay fp32. One scope for the pp = 1 loop, the
// pipeline's stages and the benchmark.
#pragma once
#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>

namespace strata::trainer {

class AutocastScope {
 public:
  AutocastScope(bool enable, c10::DeviceType device) : on_(enable), device_(device) {
    if (!on_) return;
    was_ = at::autocast::is_autocast_enabled(device_);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
    at::autocast::set_autocast_enabled(device_, true);
  }
  ~AutocastScope() {
    if (!on_ || was_) return;  // an enclosing scope keeps it on (and owns the cast cache)
    at::autocast::set_autocast_enabled(device_, false);
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_, was_ = false;
  c10::DeviceType device_;
};

}  // namespace strata::trainer
