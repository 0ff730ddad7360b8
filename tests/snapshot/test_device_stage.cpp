// Device-to-host staging of snapshot states (snapshot/device_stage.hpp). On CPU the stager must leave
// the state alone (the background thread copies straight from the live tensors: no extra copy on the
// training path). The CUDA behaviour (side stream, pinned buffers reused, ordered after the producing
// work) is checked in tests/trainer/test_cuda.cpp on a GPU machine.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "snapshot/device_stage.hpp"
#include "snapshot/serialize.hpp"

using namespace strata;

TEST_CASE("the device stager leaves CPU states untouched", "[snapshot][stage]") {
  checkpoint::CheckpointState st;
  st.step = 3;
  st.tensors["w"] = at::randn({4, 5});
  st.tensors["t"] = at::randn({5, 4}).t();  // non-contiguous
  st.tensors["rng"] = at::arange(7, at::kByte);
  std::map<std::string, const void*> before;
  for (const auto& [k, v] : st.tensors) before[k] = v.data_ptr();
  const auto bytes = snapshot::serialize_state(st);

  snapshot::DeviceStager stager;
  REQUIRE_FALSE(stager.stage(st));
  stager.wait();
  for (const auto& [k, v] : st.tensors) CHECK(v.data_ptr() == before[k]);
  CHECK(stager.pinned_bytes() == 0);
  CHECK(snapshot::serialize_state(st) == bytes);
}
