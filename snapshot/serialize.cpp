#include "snapshot/serialize.hpp"

#include <algorithm>
#include <cstring>
#include <map>

#include <ATen/ATen.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "checkpoint/manifest.pb.h"
#include "core/crc32c.hpp"
#include "core/error.hpp"

namespace strata::snapshot {

namespace {
constexpr uint64_t kMagic = 0x3150414e53525453ULL;  // "STRSNAP1"

const std::map<std::string, at::ScalarType>& dtypes() {  // the names disk checkpoints use
  static const std::map<std::string, at::ScalarType> m = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
      {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort}, {"int8", at::kChar},
      {"uint8", at::kByte},    {"bool", at::kBool}};
  return m;
}

std::string dtype_name(at::ScalarType t, const std::string& tensor) {
  for (const auto& [k, v] : dtypes())
    if (v == t) return k;
  fail("snapshot: tensor '{}' has dtype {}, which snapshots do not support", tensor, c10::toString(t));
}
}  // namespace

PreparedState::PreparedState(const checkpoint::CheckpointState& st) : step_(st.step) {
  checkpoint::pb::Manifest man;
  man.set_version(1);
  man.set_step(st.step);
  man.set_config_yaml(st.config_yaml);
  for (const auto& [k, v] : st.meta) (*man.mutable_meta())[k] = v;
  uint64_t off = 0;
  for (const auto& [name, t] : st.tensors) {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    auto* e = man.add_tensors();
    e->set_name(name);
    e->set_dtype(dtype_name(c.scalar_type(), name));
    for (auto s : c.sizes()) e->add_shape(s);
    e->set_offset(off);
    e->set_nbytes(c.nbytes());
    off += c.nbytes();
    tensors_.push_back(std::move(c));
  }
  {  // deterministic: the meta map's order must not depend on the process (dp replicas compare CRCs)
    google::protobuf::io::StringOutputStream sos(&manifest_);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    if (!man.SerializeToCodedStream(&cos)) fail("snapshot: the manifest of step {} does not serialize", st.step);
  }
  total_ = 16 + manifest_.size() + off;
  const uint64_t magic = kMagic, len = manifest_.size();
  std::memcpy(prefix_, &magic, 8);
  std::memcpy(prefix_ + 8, &len, 8);
}

template <class F>
void PreparedState::for_each_piece(F&& f) const {
  f(prefix_, uint64_t{16});
  f(reinterpret_cast<const uint8_t*>(manifest_.data()), static_cast<uint64_t>(manifest_.size()));
  for (const auto& t : tensors_) f(static_cast<const uint8_t*>(t.data_ptr()), static_cast<uint64_t>(t.nbytes()));
}

void PreparedState::write(uint8_t* dst) const { write_range(dst, 0, total_); }

void PreparedState::write_range(uint8_t* dst, uint64_t lo, uint64_t hi) const {
  if (lo > hi || hi > total_) fail("snapshot: byte range [{}, {}) is outside the {}-byte state", lo, hi, total_);
  uint64_t at = 0;  // offset of the current piece in the serialized buffer
  for_each_piece([&](const uint8_t* p, uint64_t n) {
    const uint64_t a = std::max(lo, at), e = std::min(hi, at + n);
    if (a < e) std::memcpy(dst + (a - lo), p + (a - at), e - a);
    at += n;
  });
}

uint32_t PreparedState::crc() const {
  uint32_t c = 0;
  for_each_piece([&](const uint8_t* p, uint64_t n) {
    if (n > 0) c = crc32c(p, n, c);
  });
  return c;
}

std::vector<uint8_t> serialize_state(const checkpoint::CheckpointState& st) {
  PreparedState p(st);
  std::vector<uint8_t> out(p.bytes());
  p.write(out.data());
  return out;
}

checkpoint::CheckpointState deserialize_state(const uint8_t* p, uint64_t n, const std::string& where) {
  uint64_t magic = 0, len = 0;
  if (n < 16) fail("snapshot {}: {} bytes are too few for a serialized state", where, n);
  std::memcpy(&magic, p, 8), std::memcpy(&len, p + 8, 8);
  if (magic != kMagic) fail("snapshot {}: bad magic number (not a serialized training state)", where);
  if (len > n - 16) fail("snapshot {}: manifest of {} bytes does not fit the {}-byte buffer", where, len, n);
  checkpoint::pb::Manifest man;
  if (!man.ParseFromArray(p + 16, static_cast<int>(len))) fail("snapshot {}: the manifest does not parse", where);
  const uint8_t* data = p + 16 + len;
  const uint64_t data_n = n - 16 - len;
  checkpoint::CheckpointState st;
  st.step = man.step();
  st.config_yaml = man.config_yaml();
  for (const auto& [k, v] : man.meta()) st.meta[k] = v;
  for (const auto& e : man.tensors()) {
    auto dt = dtypes().find(e.dtype());
    if (dt == dtypes().end()) fail("snapshot {}: tensor '{}' has unknown dtype '{}'", where, e.name(), e.dtype());
    std::vector<int64_t> shape(e.shape().begin(), e.shape().end());
    uint64_t numel = 1;
    for (auto s : shape) {
      if (s < 0 || (s > 0 && numel > data_n / static_cast<uint64_t>(s)))
        fail("snapshot {}: tensor '{}' has a bad shape for {} data bytes", where, e.name(), data_n);
      numel *= static_cast<uint64_t>(s);
    }
    const uint64_t need = numel * c10::elementSize(dt->second);
    if (need != e.nbytes() || e.offset() > data_n || e.nbytes() > data_n - e.offset())
      fail("snapshot {}: tensor '{}' claims bytes [{}, {}) of {} (its shape needs {})", where, e.name(), e.offset(),
           e.offset() + e.nbytes(), data_n, need);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dt->second));
    if (need > 0) std::memcpy(t.data_ptr(), data + e.offset(), need);
    st.tensors[e.name()] = t;
  }
  return st;
}

}  // namespace strata::snapshot
