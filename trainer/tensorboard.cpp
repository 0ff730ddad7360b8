#include "trainer/tensorboard.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "core/crc32c.hpp"
#include "core/error.hpp"
#include "trainer/tb_event.pb.h"

namespace strata::trainer {
namespace {

uint32_t masked_crc(const void* p, size_t n) {
  uint32_t c = crc32c(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  path_ = dir / fmt::format("events.out.tfevents.{}.{}.{}", static_cast<int64_t>(now_seconds()), host, ::getpid());
  f_ = std::fopen(path_.c_str(), "wb");
  if (!f_) fail("cannot create TensorBoard event file '{}'", path_.string());
  tb::Event e;
  e.set_wall_time(now_seconds());
  e.set_file_version("brain.Event:2");
  record(e.SerializeAsString());
}

TensorBoardWriter::~TensorBoardWriter() {
  if (f_) std::fclose(f_);
}

void TensorBoardWriter::record(const std::string& payload) {
  uint64_t len = payload.size();
  uint32_t len_crc = masked_crc(&len, sizeof(len));
  uint32_t data_crc = masked_crc(payload.data(), payload.size());
  std::fwrite(&len, sizeof(len), 1, f_);
  std::fwrite(&len_crc, sizeof(len_crc), 1, f_);
  std::fwrite(payload.data(), 1, payload.size(), f_);
  std::fwrite(&data_crc, sizeof(data_crc), 1, f_);
  std::fflush(f_);
}

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  tb::Event e;
  e.set_wall_time(now_seconds());
  e.set_step(step);
  auto* s = e.mutable_summary();
  for (const auto& [tag, v] : values) {
    if (tag == "step" || !std::isfinite(v)) continue;
    auto* sv = s->add_value();
    sv->set_tag(tag);
    sv->set_simple_value(static_cast<float>(v));
  }
  record(e.SerializeAsString());
}

}  // namespace strata::trainer
