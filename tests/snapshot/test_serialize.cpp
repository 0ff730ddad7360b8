// A training state (tensors of several dtypes, meta, recipe) survives serialize -> deserialize
// bitwise; truncated or corrupted buffers are refused with a message.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "snapshot/serialize.hpp"

using namespace strata;

TEST_CASE("serialization round-trips a checkpoint state bitwise") {
  checkpoint::CheckpointState st;
  st.step = 42;
  st.config_yaml = "run:\n  name: x\n";
  st.meta = {{"samples_consumed", "1344"}, {"growth.stage", "target"}};
  st.tensors["model.w"] = at::randn({3, 5});
  st.tensors["model.empty"] = at::zeros({0, 4});
  st.tensors["optim.step"] = at::full({}, 7, at::kLong);
  st.tensors["rng.cpu"] = at::randint(0, 255, {5056}, at::kByte);
  st.tensors["half"] = at::randn({4}).to(at::kBFloat16);
  st.tensors["strided"] = at::randn({4, 6}).t();  // non-contiguous input
  auto bytes = snapshot::serialize_state(st);
  auto back = snapshot::deserialize_state(bytes.data(), bytes.size(), "test");
  REQUIRE(back.step == 42);
  REQUIRE(back.config_yaml == st.config_yaml);
  REQUIRE(back.meta == st.meta);
  REQUIRE(back.tensors.size() == st.tensors.size());
  for (const auto& [name, t] : st.tensors) {
    INFO(name);
    const auto& b = back.tensors.at(name);
    REQUIRE(b.scalar_type() == t.scalar_type());
    REQUIRE(b.sizes() == t.sizes());
    REQUIRE(at::equal(b, t.contiguous()));
  }
}

TEST_CASE("truncated and corrupted serialized states are refused") {
  checkpoint::CheckpointState st;
  st.step = 1;
  st.tensors["model.w"] = at::randn({16});
  auto bytes = snapshot::serialize_state(st);
  auto cut = bytes;
  cut.resize(bytes.size() - 4);
  REQUIRE_THROWS_WITH(snapshot::deserialize_state(cut.data(), cut.size(), "cut"), Catch::Contains("tensor 'model.w' claims bytes"));
  auto bad = bytes;
  bad[0] ^= 1;
  REQUIRE_THROWS_WITH(snapshot::deserialize_state(bad.data(), bad.size(), "bad"), Catch::Contains("bad magic"));
  REQUIRE_THROWS_WITH(snapshot::deserialize_state(bytes.data(), 10, "short"), Catch::Contains("too few"));
}

TEST_CASE("serialization is deterministic: the meta map's order does not vary", "[snapshot]") {
  // dp replicas compare the CRC32C of their serialized states, so equal states must give equal bytes
  // (protobuf map fields serialize in hash order unless asked for deterministic output).
  std::vector<std::vector<uint8_t>> outs;
  for (int rep = 0; rep < 8; ++rep) {
    checkpoint::CheckpointState st;
    st.step = 3;
    for (int i = 0; i < 24; ++i) st.meta["key" + std::to_string((i * 7 + rep) % 24)] = "v" + std::to_string((i * 7 + rep) % 24);
    st.tensors["w"] = at::arange(6, at::kFloat);
    outs.push_back(snapshot::serialize_state(st));
  }
  for (const auto& o : outs) REQUIRE(o == outs[0]);
}
