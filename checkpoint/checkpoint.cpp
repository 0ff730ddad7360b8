#include "checkpoint/checkpoint.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <vector>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include "checkpoint/manifest.pb.h"
#include "checkpoint/sliced.hpp"
#include "core/crc32c.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"

namespace strata::checkpoint {
namespace fs = std::filesystem;
namespace {

const std::map<std::string, at::ScalarType>& dtypes() {
  static const std::map<std::string, at::ScalarType> m = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
      {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort}, {"int8", at::kChar},
      {"uint8", at::kByte},    {"bool", at::kBool}};
  return m;
}

std::string dtype_name(at::ScalarType t) {
  for (const auto& [k, v] : dtypes())
    if (v == t) return k;
  fail("checkpoint: unsupported tensor dtype {}", c10::toString(t));
}

std::optional<int64_t> step_of(const fs::path& p) {
  auto name = p.filename().string();
  if (name.rfind("step_", 0) != 0) return std::nullopt;
  auto digits = name.substr(5);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  return std::stoll(digits);
}

}  // namespace

fs::path save_checkpoint(const fs::path& root, const CheckpointState& state) {
  fs::create_directories(root);
  fs::path final_dir = root / fmt::format("step_{}", state.step);
  fs::path tmp = root / fmt::format(".tmp_step_{}.{}", state.step, ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  pb::Manifest man;
  man.set_version(1);
  man.set_step(state.step);
  man.set_config_yaml(state.config_yaml);
  for (const auto& [k, v] : state.meta) (*man.mutable_meta())[k] = v;
  std::string blob;
  for (const auto& [name, t] : state.tensors) {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    auto* e = man.add_tensors();
    e->set_name(name);
    e->set_dtype(dtype_name(c.scalar_type()));
    for (auto s : c.sizes()) e->add_shape(s);
    e->set_file("tensors.bin");
    e->set_offset(blob.size());
    e->set_nbytes(c.nbytes());
    e->set_crc32c(crc32c(c.data_ptr(), c.nbytes()));
    blob.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
  }
  try {
    write_file_durable(tmp / "tensors.bin", blob);
    write_file_durable(tmp / "manifest.pb", man.SerializeAsString());
    // Re-saving the same step replaces it; the old copy is moved aside (not deleted) until the new
    // one is in place, so a crash in between loses no data (the old copy stays as .old_step_N).
    fs::path old_dir;
    if (fs::exists(final_dir)) {
      old_dir = root / fmt::format(".old_step_{}.{}", state.step, ::getpid());
      fs::rename(final_dir, old_dir);
    }
    publish_directory(tmp, final_dir);
    if (!old_dir.empty()) fs::remove_all(old_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return final_dir;
}

CheckpointState load_checkpoint(const fs::path& dir) {
  fs::path man_path = dir / "manifest.pb";
  std::string bytes = read_file(man_path);
  pb::Manifest man;
  if (!man.ParseFromString(bytes)) fail("checkpoint '{}': manifest.pb is not a valid manifest", dir.string());
  if (man.version() == 2) return load_sliced_checkpoint(dir);  // checkpoint/sliced.hpp
  if (man.version() != 1) fail("checkpoint '{}': manifest version {} is not supported", dir.string(), man.version());
  CheckpointState st;
  st.step = man.step();
  st.config_yaml = man.config_yaml();
  for (const auto& [k, v] : man.meta()) st.meta[k] = v;
  std::map<std::string, std::string> files;
  for (const auto& e : man.tensors()) {
    if (e.file().find('/') != std::string::npos || e.file().find("..") != std::string::npos)
      fail("checkpoint '{}': tensor '{}' names file '{}' outside the checkpoint", dir.string(), e.name(), e.file());
    auto it = files.find(e.file());
    if (it == files.end()) it = files.emplace(e.file(), read_file(dir / e.file())).first;
    const std::string& blob = it->second;
    auto dt = dtypes().find(e.dtype());
    if (dt == dtypes().end()) fail("checkpoint '{}': tensor '{}' has unknown dtype '{}'", dir.string(), e.name(), e.dtype());
    std::vector<int64_t> shape(e.shape().begin(), e.shape().end());
    int64_t numel = 1;
    for (auto s : shape) {
      if (s < 0) fail("checkpoint '{}': tensor '{}' has a negative dimension", dir.string(), e.name());
      numel *= s;
    }
    uint64_t expect = static_cast<uint64_t>(numel) * c10::elementSize(dt->second);
    if (expect != e.nbytes() || e.offset() > blob.size() || e.nbytes() > blob.size() - e.offset())
      fail("checkpoint '{}': tensor '{}' claims bytes [{}, {}) of {} ({} bytes on disk, shape needs {})", dir.string(),
           e.name(), e.offset(), e.offset() + e.nbytes(), e.file(), blob.size(), expect);
    const char* p = blob.data() + e.offset();
    if (crc32c(p, e.nbytes()) != e.crc32c())
      fail("checkpoint '{}': checksum mismatch in tensor '{}' (file {}, bytes {}-{}): the checkpoint is corrupt",
           dir.string(), e.name(), e.file(), e.offset(), e.offset() + e.nbytes());
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dt->second));
    std::memcpy(t.data_ptr(), p, e.nbytes());
    st.tensors[e.name()] = t;
  }
  return st;
}

std::optional<fs::path> latest_checkpoint(const fs::path& root) {
  if (!fs::exists(root)) return std::nullopt;
  std::optional<fs::path> best;
  int64_t best_step = -1;
  for (const auto& e : fs::directory_iterator(root)) {
    auto s = step_of(e.path());
    if (s && *s > best_step && fs::exists(e.path() / "manifest.pb")) best_step = *s, best = e.path();
  }
  return best;
}

namespace {

// ".tmp_step_<N>.<id>" / ".old_step_<N>.<id>" -> N, for leftovers of interrupted saves.
std::optional<int64_t> leftover_step(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  const auto dot = name.find('.', prefix.size());
  auto digits = name.substr(prefix.size(), dot == std::string::npos ? std::string::npos : dot - prefix.size());
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  return std::stoll(digits);
}

}  // namespace

void apply_retention(const fs::path& root, int64_t keep, int64_t keep_every) {
  std::vector<std::pair<int64_t, fs::path>> all;
  std::set<int64_t> published;
  for (const auto& e : fs::directory_iterator(root))
    if (auto s = step_of(e.path())) {
      all.emplace_back(*s, e.path());
      if (fs::exists(e.path() / "manifest.pb")) published.insert(*s);
    }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + keep < all.size(); ++i) {
    if (keep_every > 0 && all[i].first % keep_every == 0) continue;
    fs::remove_all(all[i].second);
  }
  // Leftovers of saves a crash interrupted. Saves of one run are serialised and in step order, so a
  // staging directory of a step no newer than the newest published one is dead; a moved-aside old
  // copy is redundant once its step is published again (until then it is the only copy: kept).
  if (published.empty()) return;
  const int64_t newest = *published.rbegin();
  for (const auto& e : fs::directory_iterator(root)) {
    const auto name = e.path().filename().string();
    auto tmp = leftover_step(name, ".tmp_step_");
    auto old = leftover_step(name, ".old_step_");
    if ((tmp && *tmp <= newest) || (old && published.count(*old))) {
      std::error_code ec;
      fs::remove_all(e.path(), ec);
      if (!ec) spdlog::info("checkpoint: removed {} (left by an interrupted save)", e.path().string());
    }
  }
}

}  // namespace strata::checkpoint
