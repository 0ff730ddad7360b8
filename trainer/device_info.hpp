// What accelerator the run is on: its name, and through models::peak_bf16_flops its peak for MFU.
#pragma once
#include <string>

#include <c10/core/Device.h>

namespace strata::trainer {

// The CUDA device's name ("NVIDIA H100 80GB HBM3"); empty for CPU devices or when this LibTorch
// was built without CUDA headers.
std::string accelerator_name(const c10::Device& device);

}  // namespace strata::trainer
