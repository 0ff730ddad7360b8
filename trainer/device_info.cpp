#include "trainer/device_info.hpp"

#if __has_include(<ATen/cuda/CUDAContext.h>) && __has_include(<cuda_runtime_api.h>)
#include <ATen/cuda/CUDAContext.h>
#define STRATA_HAVE_CUDA_HEADERS 1
#endif

namespace strata::trainer {

std::string accelerator_name(const c10::Device& device) {
  if (!device.is_cuda()) return "";
#ifdef STRATA_HAVE_CUDA_HEADERS
  return at::cuda::getDeviceProperties(device.has_index() ? device.index() : 0)->name;
#else
  return "";
#endif
}

}  // namespace strata::trainer
