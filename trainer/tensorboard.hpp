// TensorBoard event files (events.out.tfevents.*) written natively: TFRecord framing (length,
// masked CRC32C of the length, payload, masked CRC32C of the payload) around Event protobufs.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace strata::trainer {

class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  const std::filesystem::path& path() const { return path_; }

 private:
  void record(const std::string& payload);
  std::filesystem::path path_;
  std::FILE* f_ = nullptr;
};

}  // namespace strata::trainer
