// The safetensors file format (Hugging Face), written and read without a library:
//   8 bytes: N, the header length, unsigned little-endian
//   N bytes: a JSON object {"<tensor name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
//            ..., "__metadata__": {"<key>": "<string>"}} (padded with spaces to a multiple of 8)
//   the data: every tensor's bytes, row-major little-endian, at [b, e) relative to the data start.
// Reading checks every size against the file: header length, offsets inside the data, e - b equal
// to numel * element size, no overlaps or holes; errors name the file and the tensor.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace strata::checkpoint {

struct SafetensorsFile {
  std::map<std::string, at::Tensor> tensors;  // CPU
  std::map<std::string, std::string> metadata;
};

// Writes atomically (temporary file, fsync, rename). Tensors may live on any device.
void write_safetensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
SafetensorsFile read_safetensors(const std::filesystem::path& path);

}  // namespace strata::checkpoint
