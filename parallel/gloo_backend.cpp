// c10d::ProcessGroupGloo from the torch wheel. The wheel ships c10d's headers but not gloo's; the
// declarations ProcessGroupGloo.hpp needs come from Debian's libgloo-dev (headers only, never
// linked). This file only names gloo types behind smart pointers and calls functions exported by
// libtorch_cpu, so no gloo code of the other version is compiled in (see ARCHITECTURE.md).
#include <cstdlib>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "core/error.hpp"
#include "parallel/backends.hpp"

namespace strata::parallel {

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  // GLOO_SOCKET_IFNAME picks the network interface (as in PyTorch); else the host name's address,
  // falling back to the loopback interface.
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  opts->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
}

}  // namespace strata::parallel
