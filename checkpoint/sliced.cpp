#include "checkpoint/sliced.hpp"

#include <algorithm>
#include <fstream>
#include <optional>
#include <thread>

#include <ATen/ATen.h>

#include "checkpoint/manifest.pb.h"
#include "core/crc32c.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"

namespace strata::checkpoint {
namespace fs = std::filesystem;
namespace {

const std::vector<std::pair<std::string, at::ScalarType>>& dtypes() {
  static const std::vector<std::pair<std::string, at::ScalarType>> v = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
      {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort}, {"int8", at::kChar},
      {"uint8", at::kByte},    {"bool", at::kBool}};
  return v;
}

std::string dtype_name(at::ScalarType t, const std::string& tensor) {
  for (const auto& [k, v] : dtypes())
    if (v == t) return k;
  fail("checkpoint: tensor '{}' has dtype {}, which checkpoints do not store", tensor, c10::toString(t));
}

std::optional<at::ScalarType> dtype_of(const std::string& name) {
  for (const auto& [k, v] : dtypes())
    if (k == name) return v;
  return std::nullopt;
}

bool safe_file(const std::string& f) { return !f.empty() && f.find('/') == std::string::npos && f.find("..") == std::string::npos; }

Region region_of(const pb::Slice& s) {
  if (s.flat()) return Region::range(s.flat_start(), s.flat_length());
  return Region::box({s.start().begin(), s.start().end()}, {s.length().begin(), s.length().end()});
}

// The checked form of one manifest entry (version 1: one slice holding the whole tensor).
TensorInfo parse_entry(const pb::TensorEntry& e, int version, const std::string& dir) {
  TensorInfo t;
  t.name = e.name();
  t.dtype = e.dtype();
  auto dt = dtype_of(e.dtype());
  if (!dt) fail("checkpoint '{}': tensor '{}' has unknown dtype '{}'", dir, e.name(), e.dtype());
  const uint64_t es = c10::elementSize(*dt);
  t.shape.assign(e.shape().begin(), e.shape().end());
  const Region whole = Region::whole(t.shape);
  if (auto err = region_error(whole, t.shape); !err.empty()) fail("checkpoint '{}': tensor '{}': {}", dir, e.name(), err);
  const int64_t total = numel_of(t.shape);
  if (version == 1) {
    SliceInfo s;
    s.file = e.file(), s.offset = e.offset(), s.nbytes = e.nbytes(), s.crc32c = e.crc32c(), s.region = whole;
    t.slices.push_back(std::move(s));
  } else {
    for (const auto& p : e.slices()) {
      SliceInfo s;
      s.file = p.file(), s.offset = p.offset(), s.nbytes = p.nbytes(), s.crc32c = p.crc32c(), s.rank = p.rank();
      s.chunk_bytes = p.chunk_bytes();
      s.chunk_crc32c.assign(p.chunk_crc32c().begin(), p.chunk_crc32c().end());
      s.region = region_of(p);
      const size_t i = t.slices.size();
      if (p.dtype() != e.dtype())
        fail("checkpoint '{}': tensor '{}' is {} but its slice {} says {}", dir, e.name(), e.dtype(), i, p.dtype());
      if (auto err = region_error(s.region, t.shape); !err.empty())
        fail("checkpoint '{}': tensor '{}' slice {} (file {}): {}", dir, e.name(), i, s.file, err);
      const uint64_t chunks = s.chunk_bytes ? (s.nbytes + s.chunk_bytes - 1) / s.chunk_bytes : 0;
      if (chunks != s.chunk_crc32c.size())
        fail("checkpoint '{}': tensor '{}' slice {} (file {}) has {} chunk checksums for {} chunks", dir, e.name(), i, s.file,
             s.chunk_crc32c.size(), chunks);
      t.slices.push_back(std::move(s));
    }
  }
  // Sizes, and the slices tile the tensor: disjoint, and as many elements as it has.
  int64_t covered = 0;
  std::vector<Region> boxes;
  for (size_t i = 0; i < t.slices.size(); ++i) {
    const auto& s = t.slices[i];
    if (!safe_file(s.file)) fail("checkpoint '{}': tensor '{}' names file '{}' outside the checkpoint", dir, e.name(), s.file);
    const int64_t n = s.region.numel();
    if (static_cast<uint64_t>(n) * es != s.nbytes)
      fail("checkpoint '{}': tensor '{}' slice {} (file {}) has {} bytes but its region {} needs {}", dir, e.name(), i, s.file,
           s.nbytes, s.region.str(), static_cast<uint64_t>(n) * es);
    auto bs = s.region.flat ? flat_to_boxes(s.region.flat_start, s.region.flat_length, t.shape) : std::vector<Region>{s.region};
    for (auto& b : bs) {
      if (b.numel() == 0) continue;
      for (const auto& o : boxes) {
        Region x;
        if (intersect(o, b, x))
          fail("checkpoint '{}': tensor '{}' slice {} (file {}, region {}) overlaps another slice at {}", dir, e.name(), i,
               s.file, s.region.str(), x.str());
      }
      boxes.push_back(std::move(b));
    }
    covered += n;
    if (covered > total) break;
  }
  if (covered != total)
    fail("checkpoint '{}': the slices of tensor '{}' hold {} of its {} elements", dir, e.name(), covered, total);
  return t;
}

void add_slice(pb::Manifest& part, const std::string& name, const std::vector<int64_t>& shape, const Region& region,
               const at::Tensor& t, const std::string& file, int64_t rank, uint64_t chunk_bytes, std::string& blob) {
  at::Tensor c = t.detach().to(at::kCPU).contiguous();
  if (auto err = region_error(region, shape); !err.empty()) fail("checkpoint: slice of tensor '{}': {}", name, err);
  if (c.numel() != region.numel() || (!region.flat && !c.sizes().equals(region.length)))
    fail("checkpoint: slice {} of tensor '{}' has data of shape {}", region.str(), name, c.sizes());
  auto* e = part.add_tensors();
  e->set_name(name);
  e->set_dtype(dtype_name(c.scalar_type(), name));
  for (auto s : shape) e->add_shape(s);
  auto* s = e->add_slices();
  const auto* p = static_cast<const char*>(c.data_ptr());
  const uint64_t n = c.nbytes();
  s->set_file(file);
  s->set_offset(blob.size());
  s->set_nbytes(n);
  s->set_dtype(e->dtype());
  s->set_crc32c(crc32c(p, n));
  s->set_rank(static_cast<int32_t>(rank));
  if (region.flat) {
    s->set_flat(true);
    s->set_flat_start(region.flat_start);
    s->set_flat_length(region.flat_length);
  } else {
    for (size_t d = 0; d < region.start.size(); ++d) s->add_start(region.start[d]), s->add_length(region.length[d]);
  }
  if (chunk_bytes > 0) {
    s->set_chunk_bytes(chunk_bytes);
    for (uint64_t at = 0; at < n; at += chunk_bytes) s->add_chunk_crc32c(crc32c(p + at, std::min(chunk_bytes, n - at)));
  }
  blob.append(p, n);
}

}  // namespace

fs::path save_sliced(const fs::path& root, const CheckpointState& state, const std::vector<OwnedSlice>& slices,
                     const SliceSaveOptions& o) {
  if (o.rank < 0 || o.rank >= o.world) fail("checkpoint: rank {} is outside a world of {}", o.rank, o.world);
  fs::create_directories(root);
  const fs::path tmp = root / fmt::format(".tmp_step_{}.{}", state.step, o.nonce);
  fs::create_directories(tmp);
  const std::string file = fmt::format("rank_{}.bin", o.rank);
  pb::Manifest part;
  part.set_version(2);
  part.set_step(state.step);
  part.set_world(static_cast<int32_t>(o.world));
  if (o.rank == 0) {
    part.set_config_yaml(state.config_yaml);
    for (const auto& [k, v] : state.meta) (*part.mutable_meta())[k] = v;
  }
  std::string blob;
  try {
    for (const auto& [name, t] : state.tensors)
      add_slice(part, name, t.sizes().vec(), Region::whole(t.sizes().vec()), t, file, o.rank, o.chunk_bytes, blob);
    for (const auto& s : slices) add_slice(part, s.name, s.global_shape, s.region, s.data, file, o.rank, o.chunk_bytes, blob);
    write_file_durable(tmp / file, blob);
    write_file_atomic(tmp / fmt::format("manifest.part_{}.pb", o.rank), part.SerializeAsString());
  } catch (const std::exception& e) {
    std::error_code ec;
    if (o.rank == 0) {
      fs::remove_all(tmp, ec);
    } else {  // tell rank 0 at once instead of letting it wait out its timeout
      try {
        write_file_atomic(tmp / fmt::format("failed.part_{}", o.rank), e.what());
      } catch (...) {
      }
    }
    throw;
  }
  if (o.rank != 0) return {};

  const fs::path final_dir = root / fmt::format("step_{}", state.step);
  try {
    const auto deadline = std::chrono::steady_clock::now() + o.wait;
    pb::Manifest man;
    man.set_version(2);
    man.set_step(state.step);
    man.set_world(static_cast<int32_t>(o.world));
    man.set_config_yaml(state.config_yaml);
    for (const auto& [k, v] : state.meta) (*man.mutable_meta())[k] = v;
    std::map<std::string, pb::TensorEntry> merged;
    for (int64_t r = 0; r < o.world; ++r) {
      const fs::path p = tmp / fmt::format("manifest.part_{}.pb", r);
      while (!fs::exists(p)) {
        if (fs::exists(tmp / fmt::format("failed.part_{}", r)))
          fail("rank {} could not write its part: {}", r, read_file(tmp / fmt::format("failed.part_{}", r)));
        if (std::chrono::steady_clock::now() > deadline)
          fail("rank {} did not write its part ({}) within {} s", r, p.string(), o.wait.count() / 1000.0);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      pb::Manifest m;
      if (!m.ParseFromString(read_file(p)) || m.step() != state.step)
        fail("the part of rank {} ({}) is not a manifest of step {}", r, p.string(), state.step);
      for (const auto& e : m.tensors()) {
        auto [it, fresh] = merged.emplace(e.name(), e);
        if (fresh) continue;
        if (it->second.dtype() != e.dtype() || !std::equal(e.shape().begin(), e.shape().end(), it->second.shape().begin(),
                                                           it->second.shape().end()))
          fail("tensor '{}': rank {} describes it with another dtype or global shape than an earlier rank", e.name(), r);
        for (const auto& s : e.slices()) *it->second.add_slices() = s;
      }
    }
    for (auto& [_, e] : merged) *man.add_tensors() = std::move(e);
    write_file_durable(tmp / "manifest.pb", man.SerializeAsString());
    for (int64_t r = 0; r < o.world; ++r) fs::remove(tmp / fmt::format("manifest.part_{}.pb", r));
    CheckpointReader check(tmp);  // every tensor tiled exactly by its slices, before it becomes visible
    fs::path old_dir;
    if (fs::exists(final_dir)) {  // re-saving a step: the old copy stays until the new one is in place
      old_dir = root / fmt::format(".old_step_{}.{}", state.step, o.nonce);
      fs::rename(final_dir, old_dir);
    }
    publish_directory(tmp, final_dir);
    if (!old_dir.empty()) fs::remove_all(old_dir);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fail("sliced checkpoint of step {} under '{}' was not published: {}", state.step, root.string(), e.what());
  }
  return final_dir;
}

CheckpointReader::CheckpointReader(const fs::path& dir) : dir_(dir) {
  pb::Manifest man;
  if (!man.ParseFromString(read_file(dir / "manifest.pb")))
    fail("checkpoint '{}': manifest.pb is not a valid manifest", dir.string());
  if (man.version() != 1 && man.version() != 2)
    fail("checkpoint '{}': manifest version {} is not supported", dir.string(), man.version());
  version_ = static_cast<int>(man.version());
  step_ = man.step();
  world_ = std::max<int64_t>(1, man.world());
  config_yaml_ = man.config_yaml();
  for (const auto& [k, v] : man.meta()) meta_[k] = v;
  for (const auto& e : man.tensors()) {
    if (tensors_.count(e.name())) fail("checkpoint '{}': tensor '{}' appears twice in the manifest", dir.string(), e.name());
    tensors_[e.name()] = parse_entry(e, version_, dir.string());
  }
}

const TensorInfo& CheckpointReader::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("checkpoint '{}' has no tensor '{}'", dir_.string(), name);
  return it->second;
}

at::ScalarType CheckpointReader::scalar_type(const std::string& name) const { return *dtype_of(info(name).dtype); }

std::string CheckpointReader::where(const TensorInfo& t, size_t s) const {
  const auto& sl = t.slices[s];
  return fmt::format("tensor '{}', slice {} of {} (file {}, bytes {}-{}, region {}, written by rank {})", t.name, s,
                     t.slices.size(), sl.file, sl.offset, sl.offset + sl.nbytes, sl.region.str(), sl.rank);
}

uint64_t CheckpointReader::file_size(const TensorInfo& t, size_t s) const {
  const auto& f = t.slices[s].file;
  auto it = file_sizes_.find(f);
  if (it != file_sizes_.end()) return it->second;
  std::error_code ec;
  const uint64_t size = fs::file_size(dir_ / f, ec);
  if (ec) fail("checkpoint '{}': cannot read {}: {}", dir_.string(), where(t, s), ec.message());
  return file_sizes_[f] = size;
}

void CheckpointReader::check_extents(const TensorInfo& t) const {
  for (size_t s = 0; s < t.slices.size(); ++s) {
    const auto& sl = t.slices[s];
    const uint64_t size = file_size(t, s);
    if (sl.offset > size || sl.nbytes > size - sl.offset)
      fail("checkpoint '{}': {} lies beyond the end of the file ({} bytes): the checkpoint is truncated", dir_.string(),
           where(t, s), size);
  }
}

void CheckpointReader::load(const TensorInfo& t, size_t s, uint64_t lo, uint64_t hi, char* buf) const {
  const auto& sl = t.slices[s];
  const uint64_t cb = sl.chunk_bytes;
  if (cb > 0) {
    lo = lo / cb * cb;
    hi = std::min(sl.nbytes, (hi + cb - 1) / cb * cb);
  } else {
    lo = 0, hi = sl.nbytes;
  }
  const fs::path path = dir_ / sl.file;
  const uint64_t size = file_size(t, s);
  if (sl.offset > size || sl.nbytes > size - sl.offset)
    fail("checkpoint '{}': {} lies beyond the end of the file ({} bytes): the checkpoint is truncated", dir_.string(),
         where(t, s), size);
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(sl.offset + lo));
  in.read(buf + lo, static_cast<std::streamsize>(hi - lo));
  if (!in) fail("checkpoint '{}': cannot read {}", dir_.string(), where(t, s));
  bytes_read_ += hi - lo;
  if (cb == 0) {
    if (crc32c(buf, sl.nbytes) != sl.crc32c)
      fail("checkpoint '{}': checksum mismatch in {}: the checkpoint is corrupt", dir_.string(), where(t, s));
    return;
  }
  for (uint64_t c = lo / cb; c * cb < hi; ++c)
    if (crc32c(buf + c * cb, std::min(cb, sl.nbytes - c * cb)) != sl.chunk_crc32c[c])
      fail("checkpoint '{}': checksum mismatch in {} at chunk {} (slice bytes {}-{}): the checkpoint is corrupt", dir_.string(),
           where(t, s), c, c * cb, std::min(sl.nbytes, (c + 1) * cb));
}

void CheckpointReader::read_box(const TensorInfo& t, const Region& box, at::Tensor& out) const {
  const int64_t want = box.numel();
  if (want == 0) return;
  const auto dt = *dtype_of(t.dtype);
  const uint64_t es = c10::elementSize(dt);
  const size_t nd = t.shape.size();
  int64_t covered = 0;
  auto place = [&](const at::Tensor& src, const Region& src_box, const Region& inter) {  // src holds src_box
    at::Tensor v = src, d = out;
    for (size_t k = 0; k < nd; ++k) {
      v = v.narrow(static_cast<int64_t>(k), inter.start[k] - src_box.start[k], inter.length[k]);
      d = d.narrow(static_cast<int64_t>(k), inter.start[k] - box.start[k], inter.length[k]);
    }
    d.copy_(v);
    covered += inter.numel();
  };
  for (size_t s = 0; s < t.slices.size(); ++s) {
    const auto& sl = t.slices[s];
    if (!sl.region.flat) {
      Region inter;
      if (sl.region.numel() == 0 || !intersect(sl.region, box, inter)) continue;
      std::vector<int64_t> first(nd), last(nd);
      for (size_t k = 0; k < nd; ++k)
        first[k] = inter.start[k] - sl.region.start[k], last[k] = first[k] + inter.length[k] - 1;
      at::Tensor buf = at::empty(sl.region.length, at::TensorOptions().dtype(dt));
      load(t, s, linear_index(first, sl.region.length) * es, (linear_index(last, sl.region.length) + 1) * es,
           static_cast<char*>(buf.data_ptr()));
      place(buf, sl.region, inter);
    } else {
      std::vector<int64_t> last(nd);
      for (size_t k = 0; k < nd; ++k) last[k] = box.start[k] + box.length[k] - 1;
      const int64_t fs0 = sl.region.flat_start, fl = sl.region.flat_length;
      const int64_t a = std::max(linear_index(box.start, t.shape), fs0);
      const int64_t b = std::min(linear_index(last, t.shape) + 1, fs0 + fl);
      if (a >= b) continue;
      at::Tensor buf = at::empty({fl}, at::TensorOptions().dtype(dt));
      load(t, s, (a - fs0) * es, (b - fs0) * es, static_cast<char*>(buf.data_ptr()));
      for (const auto& piece : flat_to_boxes(a, b - a, t.shape)) {
        Region inter;
        if (!intersect(piece, box, inter)) continue;
        place(buf.narrow(0, linear_index(piece.start, t.shape) - fs0, piece.numel()).view(piece.length), piece, inter);
      }
    }
  }
  if (covered != want)
    fail("checkpoint '{}': tensor '{}': its slices cover {} of the {} elements of region {}", dir_.string(), t.name, covered,
         want, box.str());
}

at::Tensor CheckpointReader::read(const std::string& name, const Region& region) const {
  const auto& t = info(name);
  if (auto err = region_error(region, t.shape); !err.empty())
    fail("checkpoint '{}': cannot read tensor '{}' at {}: {}", dir_.string(), name, region.str(), err);
  check_extents(t);
  const auto opts = at::TensorOptions().dtype(*dtype_of(t.dtype));
  if (!region.flat) {
    at::Tensor out = at::empty(region.length, opts);
    read_box(t, region, out);
    return out;
  }
  at::Tensor out = at::empty({region.flat_length}, opts);
  int64_t pos = 0;
  for (const auto& b : flat_to_boxes(region.flat_start, region.flat_length, t.shape)) {
    at::Tensor part = at::empty(b.length, opts);
    read_box(t, b, part);
    out.narrow(0, pos, b.numel()).copy_(part.reshape({-1}));
    pos += b.numel();
  }
  return out;
}

at::Tensor CheckpointReader::read_full(const std::string& name) const { return read(name, Region::whole(info(name).shape)); }

std::string CheckpointReader::check_slice(const std::string& name, size_t s) const {
  const auto& t = info(name);
  const auto& sl = t.slices.at(s);
  std::string buf(sl.nbytes, '\0');
  try {
    load(t, s, 0, sl.nbytes, buf.data());
  } catch (const Error& e) {
    return e.what();
  }
  if (crc32c(buf.data(), sl.nbytes) != sl.crc32c)
    return fmt::format("checkpoint '{}': checksum mismatch in {}: the checkpoint is corrupt", dir_.string(), where(t, s));
  return {};
}

CheckpointState load_sliced_checkpoint(const fs::path& dir) {
  CheckpointReader r(dir);
  CheckpointState st;
  st.step = r.step();
  st.config_yaml = r.config_yaml();
  st.meta = r.meta();
  for (const auto& [name, _] : r.tensors()) st.tensors[name] = r.read_full(name);
  return st;
}

}  // namespace strata::checkpoint
