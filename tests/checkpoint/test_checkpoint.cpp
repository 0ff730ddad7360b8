#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "checkpoint/checkpoint.hpp"
#include "core/error.hpp"
#include "tests/support/temp_dir.hpp"

using namespace strata::checkpoint;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
CheckpointState sample(int64_t step) {
  CheckpointState st;
  st.step = step;
  st.config_yaml = "run: {name: x}\n";
  st.tensors["model.w"] = at::randn({3, 4});
  st.tensors["model.b"] = at::arange(5, at::kLong);
  st.tensors["rng"] = at::randint(0, 255, {16}, at::kByte);
  st.meta["samples"] = "42";
  return st;
}
}  // namespace

TEST_CASE("checkpoint round trip is bitwise", "[checkpoint]") {
  strata::testing::TempDir dir;
  auto st = sample(7);
  auto path = save_checkpoint(dir.path(), st);
  REQUIRE(path.filename() == "step_7");
  auto back = load_checkpoint(path);
  REQUIRE(back.step == 7);
  REQUIRE(back.config_yaml == st.config_yaml);
  REQUIRE(back.meta.at("samples") == "42");
  for (const auto& [k, v] : st.tensors) REQUIRE(at::equal(back.tensors.at(k), v));
  REQUIRE(latest_checkpoint(dir.path()) == path);
}

TEST_CASE("a flipped byte is refused, naming the tensor and the file", "[checkpoint]") {
  strata::testing::TempDir dir;
  auto st = sample(3);
  auto path = save_checkpoint(dir.path(), st);
  // model.b comes first in name order; flip one byte inside it.
  std::fstream f(path / "tensors.bin", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(5);
  char c;
  f.seekg(5);
  f.read(&c, 1);
  c ^= 0x10;
  f.seekp(5);
  f.write(&c, 1);
  f.close();
  REQUIRE_THROWS_WITH(load_checkpoint(path), Contains("model.b") && Contains("tensors.bin") && Contains("checksum"));
}

TEST_CASE("unfinished temporary directories are never taken as checkpoints; retention", "[checkpoint]") {
  strata::testing::TempDir dir;
  for (int s : {10, 20, 30, 40, 50}) save_checkpoint(dir.path(), sample(s));
  fs::create_directories(dir / ".tmp_step_60.123");
  fs::create_directories(dir / "step_70");  // no manifest: incomplete
  REQUIRE(latest_checkpoint(dir.path())->filename() == "step_50");
  fs::remove_all(dir / "step_70");
  apply_retention(dir.path(), 2, 20);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path()))
    if (e.path().filename().string().rfind("step_", 0) == 0) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  REQUIRE(left == std::vector<std::string>{"step_20", "step_40", "step_50"});
}

TEST_CASE("retention removes leftovers of interrupted saves, never a sole copy or a newer save", "[checkpoint]") {
  strata::testing::TempDir dir;
  for (int s : {10, 20}) save_checkpoint(dir.path(), sample(s));
  for (const char* d : {".tmp_step_15.123", ".tmp_step_20.77", ".tmp_step_30.9", ".old_step_20.5", ".old_step_25.5"})
    fs::create_directories(dir / d);
  apply_retention(dir.path(), 5, 0);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path())) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  // .tmp 15/20: staging of steps no newer than the newest published (20), dead. .tmp 30: may be a
  // save in flight of a later step. .old 20: step_20 is published. .old 25: the only copy of step 25.
  REQUIRE(left == std::vector<std::string>{".old_step_25.5", ".tmp_step_30.9", "step_10", "step_20"});
  REQUIRE(latest_checkpoint(dir.path())->filename() == "step_20");
}
