// c10d::ProcessGroupNCCL for CUDA tensors. Compiled against the nvidia-nccl-cu13 wheel's nccl.h
// (the NCCL torch itself loads) when parallel/CMakeLists.txt finds it; otherwise NCCL is reported
// unavailable at run time.
#include "core/error.hpp"
#include "parallel/backends.hpp"

#ifdef STRATA_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace strata::parallel {

bool nccl_available() {
#ifdef STRATA_WITH_NCCL
  return true;
#else
  return false;
#endif
}

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout, int device_index) {
#ifdef STRATA_WITH_NCCL
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
#else
  fail("parallel.backend = nccl, but this build of Strata has no NCCL (nccl.h was not found at configure time)");
#endif
}

}  // namespace strata::parallel
