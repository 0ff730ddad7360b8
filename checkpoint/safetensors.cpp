#include "checkpoint/safetensors.hpp"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <fstream>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/fs.hpp"

namespace strata::checkpoint {
namespace fs = std::filesystem;
static_assert(std::endian::native == std::endian::little, "safetensors IO assumes a little-endian host");

namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // the format's own limit (100 MB)

const std::vector<std::pair<std::string, at::ScalarType>>& dtypes() {
  static const std::vector<std::pair<std::string, at::ScalarType>> v = {
      {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16}, {"F64", at::kDouble}, {"I64", at::kLong},
      {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},       {"U8", at::kByte},    {"BOOL", at::kBool}};
  return v;
}

std::string dtype_name(at::ScalarType t, const std::string& tensor) {
  for (const auto& [k, v] : dtypes())
    if (v == t) return k;
  fail("safetensors: tensor '{}' has dtype {}, which safetensors IO does not support", tensor, c10::toString(t));
}

}  // namespace

void write_safetensors(const fs::path& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail("safetensors: '__metadata__' is reserved and cannot name a tensor");
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t n = c.nbytes();
    header[name] = {{"dtype", dtype_name(c.scalar_type(), name)}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(std::move(c));
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  const uint64_t hlen = h.size();

  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("safetensors: cannot create '{}'", tmp.string());
  bool ok = std::fwrite(&hlen, 8, 1, f) == 1 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
  for (const auto& c : data)
    if (ok && c.nbytes() > 0) ok = std::fwrite(c.data_ptr(), 1, c.nbytes(), f) == c.nbytes();
  ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::error_code ec;
    fs::remove(tmp, ec);
    fail("safetensors: writing '{}' failed (disk full?)", path.string());
  }
  fs::rename(tmp, path);
  fsync_path(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

SafetensorsFile read_safetensors(const fs::path& path) {
  const std::string where = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("safetensors: cannot open '{}'", where);
  const uint64_t size = fs::file_size(path);
  if (size < 8) fail("safetensors '{}': file has {} bytes, fewer than the 8-byte header length", where, size);
  uint64_t hlen = 0;
  in.read(reinterpret_cast<char*>(&hlen), 8);
  if (hlen > kMaxHeader || hlen > size - 8)
    fail("safetensors '{}': header length {} does not fit the file ({} bytes)", where, hlen, size);
  std::string h(hlen, '\0');
  in.read(h.data(), static_cast<std::streamsize>(hlen));
  if (!in) fail("safetensors '{}': cannot read the {}-byte header", where, hlen);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(h);
  } catch (const nlohmann::json::exception& e) {
    fail("safetensors '{}': the header is not valid JSON: {}", where, e.what());
  }
  if (!header.is_object()) fail("safetensors '{}': the header is not a JSON object", where);
  const uint64_t data_start = 8 + hlen, data_size = size - data_start;

  SafetensorsFile out;
  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") {
      if (!e.is_object()) fail("safetensors '{}': __metadata__ is not an object", where);
      for (const auto& [k, v] : e.items()) {
        if (!v.is_string()) fail("safetensors '{}': metadata '{}' is not a string", where, k);
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      fail("safetensors '{}': tensor '{}' lacks dtype, shape or data_offsets", where, name);
    const auto& dt = e["dtype"];
    auto it = std::find_if(dtypes().begin(), dtypes().end(), [&](const auto& p) { return dt.is_string() && p.first == dt.template get<std::string>(); });
    if (it == dtypes().end()) fail("safetensors '{}': tensor '{}' has unsupported dtype {}", where, name, dt.dump());
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    if (!e["shape"].is_array()) fail("safetensors '{}': tensor '{}' has a shape that is not a list", where, name);
    for (const auto& s : e["shape"]) {
      if (!s.is_number_unsigned()) fail("safetensors '{}': tensor '{}' has a bad dimension {}", where, name, s.dump());
      shape.push_back(s.get<int64_t>());
      numel *= s.get<uint64_t>();
      if (numel > size) fail("safetensors '{}': tensor '{}' with shape {} is larger than the file", where, name, e["shape"].dump());
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail("safetensors '{}': tensor '{}' has bad data_offsets {}", where, name, off.dump());
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    const uint64_t need = numel * c10::elementSize(it->second);
    if (b > en || en > data_size || en - b != need)
      fail("safetensors '{}': tensor '{}' claims bytes [{}, {}) of a {}-byte data section, its shape {} {} needs {}",
           where, name, b, en, data_size, it->first, e["shape"].dump(), need);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(it->second));
    if (need > 0) {
      in.seekg(static_cast<std::streamoff>(data_start + b));
      in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(need));
      if (!in) fail("safetensors '{}': cannot read tensor '{}'", where, name);
    }
    out.tensors[name] = t;
    spans.push_back({b, en, name});
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  uint64_t pos = 0;
  for (const auto& s : spans) {
    if (s.begin < pos) fail("safetensors '{}': tensor '{}' overlaps the tensor before it", where, s.name);
    if (s.begin > pos) fail("safetensors '{}': bytes [{}, {}) before tensor '{}' belong to no tensor", where, pos, s.begin, s.name);
    pos = s.end;
  }
  if (pos != data_size) fail("safetensors '{}': the data section has {} bytes but the tensors cover {}", where, data_size, pos);
  return out;
}

}  // namespace strata::checkpoint
