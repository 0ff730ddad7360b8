// dp shares of a serialized state (snapshot/dp_shard.hpp): for D = 1..6 the D shares concatenate to
// exactly serialize_state's bytes, their sizes differ by at most one byte of rounding (the last may be
// shorter), they assemble in any order, and a missing, duplicated, corrupted or foreign share is
// refused with a message instead of yielding a wrong state.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <random>

#include <ATen/ATen.h>

#include "core/crc32c.hpp"
#include "snapshot/dp_shard.hpp"

using namespace strata;

namespace {
checkpoint::CheckpointState sample_state(int64_t step, int64_t n) {
  checkpoint::CheckpointState st;
  st.step = step;
  st.config_yaml = "run:\n  name: shard\n";
  st.meta = {{"samples_consumed", "64"}};
  st.tensors["model.w"] = at::randn({n, 7});
  st.tensors["model.b"] = at::randn({n}).to(at::kBFloat16);
  st.tensors["optim.step"] = at::full({}, step, at::kLong);
  st.tensors["rng.cpu"] = at::randint(0, 255, {5056}, at::kByte);
  return st;
}

std::vector<std::vector<uint8_t>> make_shares(const snapshot::PreparedState& p, int64_t D) {
  std::vector<int64_t> group(D);
  std::iota(group.begin(), group.end(), 10);  // world ranks 10, 11, ...
  std::vector<std::vector<uint8_t>> out;
  for (int64_t i = 0; i < D; ++i) {
    std::vector<uint8_t> b(snapshot::shard_size(p.bytes(), D, i));
    snapshot::write_shard(p, p.crc(), group, i, b.data());
    out.push_back(std::move(b));
  }
  return out;
}
}  // namespace

TEST_CASE("dp shares reproduce the serialized state exactly, for every split") {
  at::manual_seed(3);
  auto st = sample_state(12, 33);
  snapshot::PreparedState p(st);
  const auto full = snapshot::serialize_state(st);
  REQUIRE(p.bytes() == full.size());
  REQUIRE(p.crc() == crc32c(full.data(), full.size()));  // piecewise CRC == CRC of the buffer
  std::mt19937 rng(7);
  for (int64_t D = 1; D <= 6; ++D) {
    INFO("D = " << D);
    auto shares = make_shares(p, D);
    std::vector<uint8_t> concat;
    uint64_t smallest = UINT64_MAX, largest = 0;
    for (int64_t i = 0; i < D; ++i) {
      auto info = snapshot::read_shard(shares[i].data(), shares[i].size(), "test");
      REQUIRE(info.index == i);
      REQUIRE(info.parts == D);
      REQUIRE(info.group.front() == 10);
      REQUIRE(info.offset == concat.size());
      const uint8_t* payload = snapshot::shard_payload(shares[i].data());
      concat.insert(concat.end(), payload, payload + info.bytes);
      smallest = std::min(smallest, info.bytes), largest = std::max(largest, info.bytes);
    }
    REQUIRE(concat == full);
    REQUIRE(largest == (full.size() + D - 1) / D);
    REQUIRE(largest - smallest < static_cast<uint64_t>(D));  // only the last share is shorter
    std::shuffle(shares.begin(), shares.end(), rng);
    REQUIRE(snapshot::assemble_shards(shares, "test") == full);
  }
}

TEST_CASE("dp shares that do not form one state are refused") {
  at::manual_seed(4);
  snapshot::PreparedState p(sample_state(5, 20));
  auto shares = make_shares(p, 3);
  SECTION("missing share") {
    shares.pop_back();
    REQUIRE_THROWS_WITH(snapshot::assemble_shards(shares, "t"), Catch::Contains("2 shares given but the state was split into 3"));
  }
  SECTION("duplicated share") {
    shares[2] = shares[1];
    REQUIRE_THROWS_WITH(snapshot::assemble_shards(shares, "t"), Catch::Contains("share 1 of 3 given twice"));
  }
  SECTION("corrupted payload byte") {
    shares[1].back() ^= 0x40;
    REQUIRE_THROWS_WITH(snapshot::assemble_shards(shares, "t"), Catch::Contains("assembled state has CRC32C"));
  }
  SECTION("a share of a different state") {
    snapshot::PreparedState other(sample_state(5, 20));  // other random values, same sizes
    shares[0] = make_shares(other, 3)[0];
    REQUIRE_THROWS_WITH(snapshot::assemble_shards(shares, "t"), Catch::Contains("belongs to a different state"));
  }
  SECTION("truncated share") {
    shares[2].resize(shares[2].size() - 1);
    REQUIRE_THROWS_WITH(snapshot::assemble_shards(shares, "t"), Catch::Contains("its header says"));
  }
  SECTION("a full serialized state is not a share") {
    const auto full = snapshot::serialize_state(sample_state(1, 4));
    REQUIRE_FALSE(snapshot::is_shard(full.data(), full.size()));
    REQUIRE_THROWS_WITH(snapshot::read_shard(full.data(), full.size(), "t"), Catch::Contains("not a dp share"));
  }
}

TEST_CASE("write_range copies any byte range of the serialized state") {
  at::manual_seed(5);
  snapshot::PreparedState p(sample_state(2, 9));
  std::vector<uint8_t> full(p.bytes());
  p.write(full.data());
  for (auto [lo, hi] : std::vector<std::pair<uint64_t, uint64_t>>{{0, 0}, {0, 16}, {3, 40}, {15, p.bytes()}, {p.bytes() - 1, p.bytes()}}) {
    std::vector<uint8_t> part(hi - lo);
    p.write_range(part.data(), lo, hi);
    REQUIRE(std::equal(part.begin(), part.end(), full.begin() + lo));
  }
  std::vector<uint8_t> dummy(1);
  REQUIRE_THROWS_WITH(p.write_range(dummy.data(), 0, p.bytes() + 1), Catch::Contains("outside"));
}
