// Sliced checkpoints (checkpoint/sliced.hpp): per-rank files merged into one manifest, region
// reads from any mix of box and flat slices, corruption named, killed saves leave nothing visible.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/inspect.hpp"
#include "checkpoint/sliced.hpp"
#include "core/error.hpp"
#include "tests/support/temp_dir.hpp"

using namespace strata::checkpoint;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

at::Tensor region_of(const at::Tensor& full, const Region& r) {
  if (r.flat) return full.reshape({-1}).narrow(0, r.flat_start, r.flat_length);
  at::Tensor v = full;
  for (size_t d = 0; d < r.start.size(); ++d) v = v.narrow(static_cast<int64_t>(d), r.start[d], r.length[d]);
  return v;
}

Region random_box(const std::vector<int64_t>& shape, std::mt19937& g) {
  Region r;
  for (auto s : shape) {
    const int64_t a = std::uniform_int_distribution<int64_t>(0, s - 1)(g);
    r.start.push_back(a);
    r.length.push_back(std::uniform_int_distribution<int64_t>(1, s - a)(g));
  }
  return r;
}

// The tensors of one "run", and which rank owns which slice of each (three ranks).
struct Layout {
  std::map<std::string, at::Tensor> full;
  std::vector<std::vector<OwnedSlice>> owned = std::vector<std::vector<OwnedSlice>>(3);
  CheckpointState rank0_whole;  // written whole by rank 0
};

Layout make_layout(std::mt19937& g) {
  Layout l;
  l.full["a.box"] = at::randn({7, 9, 5});
  l.full["b.flat"] = at::randn({13, 6});
  l.full["c.mixed"] = at::arange(40, at::kLong).reshape({8, 5});
  l.full["d.ints"] = at::randint(0, 1000, {11}, at::kInt);
  l.full["e.scalar"] = at::scalar_tensor(3.5, at::kDouble);
  // a.box: split along a random dimension into three boxes, one per rank.
  {
    const auto& t = l.full["a.box"];
    const int64_t dim = std::uniform_int_distribution<int64_t>(0, 2)(g), n = t.size(dim);
    const int64_t c1 = std::uniform_int_distribution<int64_t>(1, n - 2)(g);
    const int64_t c2 = std::uniform_int_distribution<int64_t>(c1 + 1, n - 1)(g);
    const int64_t cuts[4] = {0, c1, c2, n};
    for (int r = 0; r < 3; ++r) {
      Region reg = Region::whole(t.sizes().vec());
      reg.start[dim] = cuts[r];
      reg.length[dim] = cuts[r + 1] - cuts[r];
      l.owned[r].push_back({"a.box", t.sizes().vec(), reg, region_of(t, reg).clone()});
    }
  }
  // b.flat: ZeRO-style flat ranges at random cut points, not aligned to rows.
  {
    const auto& t = l.full["b.flat"];
    const int64_t n = t.numel(), c1 = std::uniform_int_distribution<int64_t>(1, n / 2)(g);
    const int64_t c2 = std::uniform_int_distribution<int64_t>(c1 + 1, n - 1)(g);
    const int64_t cuts[4] = {0, c1, c2, n};
    for (int r = 0; r < 3; ++r) {
      auto reg = Region::range(cuts[r], cuts[r + 1] - cuts[r]);
      l.owned[r].push_back({"b.flat", t.sizes().vec(), reg, region_of(t, reg).clone()});
    }
  }
  // c.mixed: rows 0-2 as a box (rank 1), elements 15.. as a flat range (rank 2).
  {
    const auto& t = l.full["c.mixed"];
    auto box = Region::box({0, 0}, {3, 5});
    auto rng = Region::range(15, 25);
    l.owned[1].push_back({"c.mixed", {8, 5}, box, region_of(t, box).clone()});
    l.owned[2].push_back({"c.mixed", {8, 5}, rng, region_of(t, rng).clone()});
  }
  l.rank0_whole.tensors["d.ints"] = l.full["d.ints"];
  l.rank0_whole.tensors["e.scalar"] = l.full["e.scalar"];
  l.rank0_whole.config_yaml = "run: {name: sliced}\n";
  l.rank0_whole.meta["samples_consumed"] = "96";
  return l;
}

fs::path save_layout(const fs::path& root, Layout& l, int64_t step, uint64_t chunk = 64) {
  fs::path out;
  for (int r : {2, 1, 0}) {  // rank 0 last: it merges the parts already there
    SliceSaveOptions o;
    o.rank = r, o.world = 3, o.nonce = "t", o.chunk_bytes = chunk;
    CheckpointState st = r == 0 ? l.rank0_whole : CheckpointState{};
    st.step = step;
    auto p = save_sliced(root, st, l.owned[r], o);
    if (r == 0) out = p;
  }
  return out;
}

void flip_byte(const fs::path& file, std::streamoff at) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  char c;
  f.seekg(at);
  f.read(&c, 1);
  c ^= 0x10;
  f.seekp(at);
  f.write(&c, 1);
}

}  // namespace

TEST_CASE("flat ranges split into contiguous boxes in order", "[checkpoint][sliced]") {
  std::mt19937 g(5);
  const std::vector<int64_t> shape = {3, 4, 5};
  const at::Tensor idx = at::arange(60, at::kLong).reshape({3, 4, 5});
  for (int k = 0; k < 200; ++k) {
    const int64_t a = std::uniform_int_distribution<int64_t>(0, 59)(g);
    const int64_t n = std::uniform_int_distribution<int64_t>(1, 60 - a)(g);
    std::vector<at::Tensor> parts;
    for (const auto& b : flat_to_boxes(a, n, shape)) parts.push_back(region_of(idx, b).reshape({-1}));
    REQUIRE(at::equal(at::cat(parts), at::arange(a, a + n, at::kLong)));
  }
}

TEST_CASE("sliced round trip: every random region equals the same region of the full tensor", "[checkpoint][sliced]") {
  strata::testing::TempDir dir;
  for (unsigned seed : {1u, 2u, 3u}) {
    std::mt19937 g(seed);
    at::manual_seed(seed);
    auto l = make_layout(g);
    const auto path = save_layout(dir.path(), l, seed);
    REQUIRE(path.filename() == "step_" + std::to_string(seed));
    for (const char* f : {"rank_0.bin", "rank_1.bin", "rank_2.bin", "manifest.pb"}) REQUIRE(fs::exists(path / f));
    REQUIRE_FALSE(fs::exists(path / "manifest.part_0.pb"));
    CheckpointReader r(path);
    REQUIRE(r.version() == 2);
    REQUIRE(r.world() == 3);
    REQUIRE(r.info("a.box").slices.size() == 3);
    REQUIRE(r.info("c.mixed").slices.size() == 2);
    for (const auto& [name, full] : l.full) {
      const auto shape = full.sizes().vec();
      for (int k = 0; k < 40; ++k) {
        const Region box = random_box(shape, g);
        auto got = r.read(name, box);
        INFO(name << " " << box.str());
        REQUIRE(at::equal(got, region_of(full, box)));
        const int64_t a = std::uniform_int_distribution<int64_t>(0, full.numel() - 1)(g);
        const Region rng = Region::range(a, std::uniform_int_distribution<int64_t>(1, full.numel() - a)(g));
        INFO(rng.str());
        REQUIRE(at::equal(r.read(name, rng), region_of(full, rng)));
      }
    }
    // load_checkpoint assembles whole tensors from the slices, with config and meta.
    auto st = load_checkpoint(path);
    REQUIRE(st.step == seed);
    REQUIRE(st.meta.at("samples_consumed") == "96");
    REQUIRE(st.config_yaml == "run: {name: sliced}\n");
    for (const auto& [name, full] : l.full) REQUIRE(at::equal(st.tensors.at(name), full));
  }
}

TEST_CASE("a small region reads only the chunks it overlaps; version-1 checkpoints read through the same reader",
          "[checkpoint][sliced]") {
  strata::testing::TempDir dir;
  std::mt19937 g(9);
  auto l = make_layout(g);
  l.owned[1].push_back({"big", {256, 64}, Region::box({0, 0}, {256, 64}), at::randn({256, 64})});
  const auto path = save_layout(dir.path(), l, 4, /*chunk=*/4096);
  CheckpointReader r(path);
  auto row = r.read("big", Region::box({100, 0}, {1, 64}));  // 256 bytes: one 4 KB chunk of a 64 KB slice
  REQUIRE(at::equal(row, l.owned[1].back().data.narrow(0, 100, 1)));
  REQUIRE(r.bytes_read() <= 8192);

  CheckpointState v1;
  v1.step = 1;
  v1.tensors["w"] = at::randn({6, 4});
  auto p1 = save_checkpoint(dir / "old", v1);
  CheckpointReader r1(p1);
  REQUIRE(r1.version() == 1);
  REQUIRE(at::equal(r1.read("w", Region::box({2, 1}, {3, 2})), v1.tensors["w"].narrow(0, 2, 3).narrow(1, 1, 2)));
  REQUIRE(at::equal(r1.read("w", Region::range(5, 11)), v1.tensors["w"].reshape({-1}).narrow(0, 5, 11)));
}

TEST_CASE("a corrupted slice is detected and named; other regions still read", "[checkpoint][sliced]") {
  strata::testing::TempDir dir;
  std::mt19937 g(4);
  auto l = make_layout(g);
  const auto path = save_layout(dir.path(), l, 8, /*chunk=*/64);
  CheckpointReader before(path);
  // Flip a byte in the first slice rank 1 wrote (a.box is first in rank 1's file).
  const auto& s = before.info("a.box").slices;
  size_t victim = 0;
  while (s[victim].rank != 1) ++victim;
  flip_byte(path / "rank_1.bin", static_cast<std::streamoff>(s[victim].offset + 3));
  CheckpointReader r(path);
  REQUIRE_THROWS_WITH(r.read_full("a.box"),
                      Contains("checksum mismatch") && Contains("'a.box'") && Contains("rank_1.bin") &&
                          Contains(fmt::format("slice {}", victim)));
  REQUIRE_THROWS_WITH(load_checkpoint(path), Contains("a.box") && Contains("rank_1.bin"));
  REQUIRE(at::equal(r.read_full("b.flat"), l.full["b.flat"]));  // untouched tensors still load
  auto rep = verify_checkpoint(path);
  REQUIRE(rep.problems.size() == 1);
  REQUIRE_THAT(rep.problems[0], Contains("a.box") && Contains("rank_1.bin") && Contains(s[victim].region.str()));
  REQUIRE(rep.slices == 3 + 3 + 2 + 2);
  // A truncated file is named too.
  fs::resize_file(path / "rank_2.bin", 8);
  auto rep2 = verify_checkpoint(path);
  REQUIRE(rep2.problems.size() >= 2);
  REQUIRE_THAT(rep2.problems.back(), Contains("rank_2.bin") && Contains("truncated"));
}

TEST_CASE("slices that do not tile a tensor are refused before anything is published", "[checkpoint][sliced]") {
  strata::testing::TempDir dir;
  CheckpointState st;
  st.step = 3;
  SliceSaveOptions o;
  const at::Tensor t = at::randn({4, 4});
  std::vector<OwnedSlice> gap = {{"w", {4, 4}, Region::box({0, 0}, {3, 4}), t.narrow(0, 0, 3)}};
  REQUIRE_THROWS_WITH(save_sliced(dir.path(), st, gap, o), Contains("'w'") && Contains("12 of its 16"));
  std::vector<OwnedSlice> overlap = {{"w", {4, 4}, Region::box({0, 0}, {3, 4}), t.narrow(0, 0, 3)},
                                     {"w", {4, 4}, Region::range(8, 8), t.reshape({-1}).narrow(0, 8, 8)}};
  REQUIRE_THROWS_WITH(save_sliced(dir.path(), st, overlap, o), Contains("overlaps"));
  REQUIRE_FALSE(latest_checkpoint(dir.path()).has_value());
  for (const auto& e : fs::directory_iterator(dir.path())) FAIL("left behind: " << e.path());
}

TEST_CASE("a save that dies midway leaves the previous checkpoint loadable and nothing partial visible",
          "[checkpoint][sliced][crash]") {
  strata::testing::TempDir dir;
  std::mt19937 g(11);
  auto l = make_layout(g);
  const auto good = save_layout(dir.path(), l, 10);

  SECTION("disk full while writing a rank file (STRATA_FAULT_ENOSPC)") {
    ::setenv("STRATA_FAULT_ENOSPC", "rank_0.bin", 1);
    REQUIRE_THROWS_WITH(save_layout(dir.path(), l, 20), Contains("rank_0.bin"));
    ::unsetenv("STRATA_FAULT_ENOSPC");
  }
  SECTION("the process is SIGKILLed during a save") {
    at::set_num_threads(1);
    CheckpointState big;
    big.tensors["blob"] = at::randn({4 << 20});  // 16 MB per save
    const pid_t child = ::fork();
    if (child == 0) {  // saves until killed; never returns into Catch
      try {
        for (int64_t step = 20;; ++step) {
          big.step = step;
          save_sliced(dir.path(), big, {}, SliceSaveOptions{});
        }
      } catch (...) {
      }
      ::_exit(3);
    }
    REQUIRE(child > 0);
    // Kill it once a save of step >= 21 is under way (its temporary directory exists).
    bool seen = false;
    for (int i = 0; i < 4000 && !seen; ++i) {
      for (const auto& e : fs::directory_iterator(dir.path()))
        if (e.path().filename().string().rfind(".tmp_step_2", 0) == 0 && fs::exists(dir / "step_20")) seen = true;
      if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(seen);
    REQUIRE(WIFSIGNALED(status));
  }
  // Every visible step_N is complete and verifies; the newest one loads; step_10 is intact.
  for (const auto& e : fs::directory_iterator(dir.path())) {
    const auto name = e.path().filename().string();
    if (name.rfind("step_", 0) != 0) continue;
    INFO(name);
    REQUIRE(fs::exists(e.path() / "manifest.pb"));
    REQUIRE(verify_checkpoint(e.path()).problems.empty());
  }
  auto latest = latest_checkpoint(dir.path());
  REQUIRE(latest.has_value());
  REQUIRE_NOTHROW(load_checkpoint(*latest));
  auto st = load_checkpoint(good);
  for (const auto& [name, full] : l.full) REQUIRE(at::equal(st.tensors.at(name), full));
}
