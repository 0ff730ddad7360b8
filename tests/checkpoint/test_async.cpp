// AsyncSaver (checkpoint/async_saver.hpp): the staged copy is the state at submit time, one save
// in flight at a time, background errors surface naming the step.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "checkpoint/async_saver.hpp"
#include "checkpoint/checkpoint.hpp"
#include "core/error.hpp"
#include "tests/support/temp_dir.hpp"

using namespace strata::checkpoint;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

TEST_CASE("an asynchronous save writes the state as it was at submit time", "[checkpoint][async]") {
  strata::testing::TempDir dir;
  AsyncSaver saver;
  CheckpointState st;
  st.step = 5;
  st.tensors["w"] = at::randn({64, 64});
  st.tensors["n"] = at::arange(10, at::kLong);
  st.meta["k"] = "v";
  std::vector<OwnedSlice> slices = {{"s", {8}, Region::range(0, 8), at::ones({8})}};
  const at::Tensor w0 = st.tensors["w"].clone();
  std::atomic<bool> go{false};
  saver.submit(st, slices, [&](const CheckpointState& s, const std::vector<OwnedSlice>& sl) {
    while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    save_sliced(dir.path(), s, sl);
  });
  REQUIRE(saver.in_flight());
  REQUIRE(saver.staging_bytes() == 64 * 64 * 4 + 10 * 8 + 8 * 4);
  st.tensors["w"].add_(1.0);  // training goes on and changes the live tensors
  slices[0].data.zero_();
  REQUIRE_FALSE(latest_checkpoint(dir.path()).has_value());  // not visible before the commit
  go = true;
  saver.wait();
  auto back = load_checkpoint(dir / "step_5");
  REQUIRE(at::equal(back.tensors.at("w"), w0));
  REQUIRE(at::equal(back.tensors.at("s"), at::ones({8})));
  REQUIRE(back.meta.at("k") == "v");
}

TEST_CASE("one save in flight; a background failure surfaces at the next save, naming the step", "[checkpoint][async]") {
  AsyncSaver saver;
  CheckpointState st;
  st.tensors["w"] = at::zeros({4});
  std::atomic<int> running{0}, most{0};
  auto slow = [&](const CheckpointState&, const std::vector<OwnedSlice>&) {
    most = std::max(most.load(), ++running);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --running;
  };
  for (int s = 1; s <= 3; ++s) {
    st.step = s;
    saver.submit(st, {}, slow);
  }
  saver.wait();
  REQUIRE(most == 1);
  st.step = 7;
  saver.submit(st, {}, [](const CheckpointState&, const std::vector<OwnedSlice>&) { strata::fail("disk on fire"); });
  st.step = 8;
  REQUIRE_THROWS_WITH(saver.submit(st, {}, slow), Contains("step 7") && Contains("disk on fire"));
  saver.wait();  // the error was reported once; the failed submit started nothing
  REQUIRE_FALSE(saver.in_flight());
}
