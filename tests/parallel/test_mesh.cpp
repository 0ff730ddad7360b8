#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "parallel/mesh.hpp"
#include "parallel/runtime.hpp"

using namespace strata;
using namespace strata::parallel;

TEST_CASE("mesh: dp inferred, tp innermost, pp outermost") {
  ParallelConfig c;
  c.tp = 2;
  c.pp = 2;
  MeshShape m(16, c);
  CHECK(m.dp() == 4);
  auto x = m.coord(13);  // 13 = 1 + 2 * (2 + 4 * 1)
  CHECK(x.tp == 1);
  CHECK(x.dp == 2);
  CHECK(x.pp == 1);
  for (int64_t r = 0; r < 16; ++r) CHECK(m.rank_of(m.coord(r)) == r);
  CHECK(m.groups("tp")[0] == std::vector<int64_t>{0, 1});
  CHECK(m.groups("tp")[5] == std::vector<int64_t>{10, 11});
  CHECK(m.groups("dp")[0] == std::vector<int64_t>{0, 2, 4, 6});
  CHECK(m.groups("dp")[3] == std::vector<int64_t>{9, 11, 13, 15});
  CHECK(m.groups("pp")[0] == std::vector<int64_t>{0, 8});
  CHECK(m.groups("pp").size() == 8);
  for (auto axis : {"tp", "dp", "pp"}) CHECK_NOTHROW(group_index_of(m.groups(axis), 16, 7, axis));
}

TEST_CASE("mesh: inconsistent layouts are errors naming the keys") {
  ParallelConfig c;
  c.tp = 3;
  CHECK_THROWS_WITH(MeshShape(8, c), Catch::Contains("not divisible by parallel.tp x parallel.pp"));
  c.tp = 2;
  c.dp = 3;
  CHECK_THROWS_WITH(MeshShape(8, c), Catch::Contains("= 6 but the world has 8"));
  c.dp = 4;
  CHECK(MeshShape(8, c).dp() == 4);
  CHECK_THROWS_WITH(group_index_of({{0, 1}, {1, 2}}, 3, 0, "x"), Catch::Contains("more than one group"));
  CHECK_THROWS_WITH(group_index_of({{0, 1}}, 3, 0, "x"), Catch::Contains("rank 2 is in no group"));
}

TEST_CASE("a one-process runtime gives one-rank groups on every axis") {
  auto rt = Runtime::init(World{}, RuntimeOptions{});
  DeviceMesh mesh(*rt, ParallelConfig{});
  CHECK(mesh.dp()->size() == 1);
  CHECK(mesh.tp()->size() == 1);
  CHECK(mesh.pp()->size() == 1);
  CHECK(mesh.dp()->name() == "dp[0]");
}
