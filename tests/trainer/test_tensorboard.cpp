// The TensorBoard writer's files are valid TFRecord streams of Event protos: read them back with
// an independent reader (framing, masked CRC32C of length and payload, protobuf parse).
#include <cstring>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "core/crc32c.hpp"
#include "tests/support/temp_dir.hpp"
#include "trainer/tb_event.pb.h"
#include "trainer/tensorboard.hpp"

using namespace strata;

namespace {
uint32_t masked(const void* p, size_t n) {
  uint32_t c = crc32c(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}
std::vector<trainer::tb::Event> read_events(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<trainer::tb::Event> out;
  uint64_t len;
  while (in.read(reinterpret_cast<char*>(&len), 8)) {
    uint32_t len_crc, data_crc;
    in.read(reinterpret_cast<char*>(&len_crc), 4);
    REQUIRE(len_crc == masked(&len, 8));
    std::string payload(len, '\0');
    in.read(payload.data(), len);
    in.read(reinterpret_cast<char*>(&data_crc), 4);
    REQUIRE(data_crc == masked(payload.data(), len));
    trainer::tb::Event e;
    REQUIRE(e.ParseFromString(payload));
    out.push_back(e);
  }
  return out;
}
}  // namespace

TEST_CASE("TensorBoard event files: version record, then one event per step with its scalars", "[trainer][tensorboard]") {
  testing::TempDir dir;
  std::filesystem::path file;
  {
    trainer::TensorBoardWriter w(dir.path());
    file = w.path();
    w.scalars(1, {{"step", 1}, {"loss", 5.5}, {"lr", 1e-3}});
    w.scalars(2, {{"step", 2}, {"loss", 4.25}, {"val_loss", 4.5}});
  }
  REQUIRE(file.filename().string().rfind("events.out.tfevents.", 0) == 0);
  auto ev = read_events(file);
  REQUIRE(ev.size() == 3);
  REQUIRE(ev[0].file_version() == "brain.Event:2");
  REQUIRE(ev[1].step() == 1);
  REQUIRE(ev[1].summary().value_size() == 2);
  REQUIRE(ev[1].summary().value(0).tag() == "loss");
  REQUIRE(ev[1].summary().value(0).simple_value() == 5.5f);
  REQUIRE(ev[2].summary().value(1).tag() == "val_loss");
  REQUIRE(ev[2].summary().value(1).simple_value() == 4.5f);
}
