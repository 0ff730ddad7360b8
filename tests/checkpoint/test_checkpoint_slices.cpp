// Per-rank tp slices (trainer/checkpoint_slices.hpp): each simulated tp rank writes its own part of
// a global tensor (vocabulary padding left out, replicated ranges written once, ZeRO-1 flat pieces of
// a column-split tensor as boxes); the merged checkpoint reads back under another tp degree, each
// rank reading only its slices and verifying their checksums.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "checkpoint/sliced.hpp"
#include "core/error.hpp"
#include "parallel/parallelize.hpp"
#include "tests/support/temp_dir.hpp"
#include "trainer/checkpoint_slices.hpp"

using namespace strata;
using namespace strata::trainer;
using strata::checkpoint::CheckpointReader;
using strata::checkpoint::OwnedSlice;
namespace fs = std::filesystem;

namespace {

// Row-split layout of a tensor with `full` rows over t ranks, `local` rows each (padded).
parallel::ShardLayout rows(int64_t full, int64_t local, std::vector<int64_t> starts) {
  parallel::ShardLayout l;
  l.dim = 0, l.full = full, l.local = local, l.starts = std::move(starts);
  return l;
}

// Rank q's local tensor of layout l cut from `global` (padding rows zero).
at::Tensor local_of(const at::Tensor& global, const parallel::ShardLayout& l, int64_t q) {
  auto shape = global.sizes().vec();
  shape[l.dim] = l.local;
  auto out = at::zeros(shape);
  if (l.valid(q) > 0) out.narrow(l.dim, 0, l.valid(q)).copy_(global.narrow(l.dim, l.starts[q], l.valid(q)));
  return out;
}

// Saves `per_rank[q]` as rank q's part of one sliced checkpoint (ranks > 0 first: rank 0 merges).
fs::path save_all(const fs::path& root, const std::vector<std::vector<OwnedSlice>>& per_rank) {
  checkpoint::CheckpointState st;
  st.step = 7;
  checkpoint::SliceSaveOptions o;
  o.world = static_cast<int64_t>(per_rank.size());
  o.chunk_bytes = 0;  // whole-slice checksums: a read touches whole slices
  for (int64_t q = o.world - 1; q >= 0; --q) {
    o.rank = q;
    checkpoint::save_sliced(root, st, per_rank[q], o);
  }
  return root / "step_7";
}

}  // namespace

TEST_CASE("per-rank tp slices: padded vocabulary rows at tp = 4 read back at tp = 2 and tp = 1", "[checkpoint][slices]") {
  testing::TempDir tmp;
  const auto global = at::arange(30, at::kFloat).reshape({10, 3});  // 10 vocabulary rows, padded to 16
  const auto l4 = rows(10, 4, {0, 4, 8, 12});
  std::vector<std::vector<OwnedSlice>> parts(4);
  for (int64_t q = 0; q < 4; ++q) add_local_slices(parts[q], "model.wte", placement_of({4, 3}, &l4, q), local_of(global, l4, q));
  CHECK(parts[2].size() == 1);  // rows 8, 9 only
  CHECK(parts[2][0].data.size(0) == 2);
  CHECK(parts[3].empty());  // all padding
  const auto dir = save_all(tmp.path(), parts);

  CheckpointReader r(dir);
  REQUIRE(r.info("model.wte").shape == std::vector<int64_t>{10, 3});
  REQUIRE(r.info("model.wte").slices.size() == 3);
  CHECK(at::equal(r.read_full("model.wte"), global));
  const auto l2 = rows(10, 8, {0, 8});
  for (int64_t q = 0; q < 2; ++q) {
    CheckpointReader rq(dir);
    CHECK(at::equal(read_local(rq, "model.wte", placement_of({8, 3}, &l2, q)), local_of(global, l2, q)));
    CHECK(rq.bytes_read() == (q == 0 ? 8u : 2u) * 3 * 4);  // only the slices overlapping its rows
  }
  // tp = 1 (replicated placement): the whole tensor.
  CHECK(at::equal(read_local(r, "model.wte", placement_of({10, 3}, nullptr, 0)), global));
  // A different model: named, not silently loaded.
  const auto l2b = rows(12, 8, {0, 8});
  CHECK_THROWS_WITH(read_local(r, "model.wte", placement_of({8, 3}, &l2b, 0)),
                    Catch::Matchers::Contains("has shape [10, 3] but this run expects [12, 3]"));
}

TEST_CASE("per-rank tp slices: a range shared by two tp ranks is written once", "[checkpoint][slices]") {
  const auto l = rows(4, 2, {0, 0, 2, 2});  // one KV head of 2 rows on ranks 0, 1; the other on 2, 3
  CHECK(placement_of({2, 5}, &l, 0).writer);
  CHECK_FALSE(placement_of({2, 5}, &l, 1).writer);
  CHECK(placement_of({2, 5}, &l, 2).writer);
  CHECK_FALSE(placement_of({2, 5}, &l, 3).writer);
  CHECK(placement_of({2, 5}, &l, 3).start == 2);
  CHECK_THROWS_WITH(placement_of({3, 5}, &l, 0), Catch::Matchers::Contains("not a 2-element tp shard of dimension 0"));
}

TEST_CASE("per-rank tp slices: ZeRO-1 pieces of a column-split tensor, read under another split", "[checkpoint][slices]") {
  testing::TempDir tmp;
  const auto global = at::arange(24, at::kFloat).reshape({3, 8}) * 0.5;
  parallel::ShardLayout l;  // columns split over tp = 2: [3, 4] each
  l.dim = 1, l.full = 8, l.local = 4, l.starts = {0, 4};
  // 4 ranks = tp 2 x dp 2: each dp rank holds a flat piece of its tp rank's local [3, 4] tensor.
  std::vector<std::vector<OwnedSlice>> parts(4);
  for (int64_t q = 0; q < 2; ++q) {
    const auto pl = placement_of({3, 4}, &l, q);
    const auto flat = local_of(global, l, q).reshape({-1});
    add_local_range_slices(parts[2 * q], "optim.m.w", pl, 0, flat.narrow(0, 0, 5));      // dp rank 0
    add_local_range_slices(parts[2 * q + 1], "optim.m.w", pl, 5, flat.narrow(0, 5, 7));  // dp rank 1
  }
  CHECK(parts[0].size() == 2);  // local elements 0..4: row 0 whole, row 1 first element
  const auto dir = save_all(tmp.path(), parts);
  CheckpointReader r(dir);
  CHECK(at::equal(r.read_full("optim.m.w"), global));
  // Read under tp = 1 with dp = 3 pieces of 8 elements, and under tp = 2 as one local tensor.
  for (int64_t k = 0; k < 3; ++k)
    CHECK(at::equal(read_local_range(r, "optim.m.w", placement_of({3, 8}, nullptr, 0), 8 * k, 8),
                    global.reshape({-1}).narrow(0, 8 * k, 8)));
  CHECK(at::equal(read_local_range(r, "optim.m.w", placement_of({3, 4}, &l, 1), 3, 6),
                  local_of(global, l, 1).reshape({-1}).narrow(0, 3, 6)));
}

TEST_CASE("per-rank tp slices: a corrupt slice fails the rank that reads it, naming it", "[checkpoint][slices]") {
  testing::TempDir tmp;
  const auto global = at::randn({8, 4});
  const auto l = rows(8, 4, {0, 4});
  std::vector<std::vector<OwnedSlice>> parts(2);
  for (int64_t q = 0; q < 2; ++q) add_local_slices(parts[q], "model.w", placement_of({4, 4}, &l, q), local_of(global, l, q));
  const auto dir = save_all(tmp.path(), parts);
  {
    std::fstream f(dir / "rank_1.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(9);
    char c = 0;
    f.read(&c, 1);
    c ^= 0x20;
    f.seekp(9);
    f.write(&c, 1);
  }
  CheckpointReader r(dir);
  CHECK(at::equal(read_local(r, "model.w", placement_of({4, 4}, &l, 0)), local_of(global, l, 0)));  // rank 0's slice is intact
  CHECK_THROWS_WITH(read_local(r, "model.w", placement_of({4, 4}, &l, 1)),
                    Catch::Matchers::Contains("checksum mismatch in tensor 'model.w'") &&
                        Catch::Matchers::Contains("rank_1.bin"));
}
