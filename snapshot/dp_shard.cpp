#include "snapshot/dp_shard.hpp"

#include <cstring>

#include "core/crc32c.hpp"
#include "core/error.hpp"

namespace strata::snapshot {
namespace {
constexpr uint64_t kShardMagic = 0x3144524853525453ULL;  // "STRSHRD1"
constexpr uint64_t kFixed = 48;                           // header bytes before the group ranks

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <class T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}
}  // namespace

std::pair<uint64_t, uint64_t> shard_range(uint64_t full, int64_t parts, int64_t index) {
  if (parts < 1 || index < 0 || index >= parts) fail("snapshot: share {} of {} does not exist", index, parts);
  const uint64_t c = (full + parts - 1) / parts;
  const uint64_t lo = std::min<uint64_t>(full, c * index), hi = std::min<uint64_t>(full, lo + c);
  return {lo, hi - lo};
}

uint64_t shard_size(uint64_t full, int64_t parts, int64_t index) {
  return kFixed + 8 * static_cast<uint64_t>(parts) + shard_range(full, parts, index).second;
}

void write_shard(const PreparedState& st, uint32_t full_crc, const std::vector<int64_t>& group, int64_t index, uint8_t* dst) {
  const int64_t parts = static_cast<int64_t>(group.size());
  const auto [off, n] = shard_range(st.bytes(), parts, index);
  store<uint64_t>(dst, kShardMagic);
  store<uint64_t>(dst + 8, st.bytes());
  store<uint32_t>(dst + 16, full_crc);
  store<int32_t>(dst + 20, static_cast<int32_t>(parts));
  store<int32_t>(dst + 24, static_cast<int32_t>(index));
  store<int32_t>(dst + 28, 0);
  store<uint64_t>(dst + 32, off);
  store<uint64_t>(dst + 40, n);
  for (int64_t i = 0; i < parts; ++i) store<int64_t>(dst + kFixed + 8 * i, group[i]);
  st.write_range(dst + kFixed + 8 * parts, off, off + n);
}

bool is_shard(const uint8_t* p, uint64_t n) { return n >= 8 && load<uint64_t>(p) == kShardMagic; }

ShardInfo read_shard(const uint8_t* p, uint64_t n, const std::string& where) {
  if (!is_shard(p, n) || n < kFixed) fail("snapshot {}: not a dp share (bad magic or {} bytes)", where, n);
  ShardInfo s;
  s.full_bytes = load<uint64_t>(p + 8);
  s.full_crc = load<uint32_t>(p + 16);
  s.parts = load<int32_t>(p + 20);
  s.index = load<int32_t>(p + 24);
  s.offset = load<uint64_t>(p + 32);
  s.bytes = load<uint64_t>(p + 40);
  if (s.parts < 1 || s.parts > (1 << 20) || s.index < 0 || s.index >= s.parts)
    fail("snapshot {}: share {} of {} is not a valid share index", where, s.index, s.parts);
  const auto [off, len] = shard_range(s.full_bytes, s.parts, s.index);
  if (s.offset != off || s.bytes != len)
    fail("snapshot {}: share {} of {} claims bytes [{}, {}) of {}, expected [{}, {})", where, s.index, s.parts, s.offset,
         s.offset + s.bytes, s.full_bytes, off, off + len);
  if (n != kFixed + 8 * static_cast<uint64_t>(s.parts) + s.bytes)
    fail("snapshot {}: share {} of {} has {} bytes, its header says {}", where, s.index, s.parts, n,
         kFixed + 8 * static_cast<uint64_t>(s.parts) + s.bytes);
  for (int32_t i = 0; i < s.parts; ++i) s.group.push_back(load<int64_t>(p + kFixed + 8 * i));
  return s;
}

const uint8_t* shard_payload(const uint8_t* p) { return p + kFixed + 8 * static_cast<uint64_t>(load<int32_t>(p + 20)); }

std::vector<uint8_t> assemble_shards(const std::vector<std::vector<uint8_t>>& shares, const std::string& where) {
  if (shares.empty()) fail("snapshot {}: no dp shares to assemble", where);
  std::vector<ShardInfo> info;
  for (size_t i = 0; i < shares.size(); ++i)
    info.push_back(read_shard(shares[i].data(), shares[i].size(), fmt::format("{} (share {})", where, i)));
  const ShardInfo& a = info[0];
  if (static_cast<size_t>(a.parts) != shares.size())
    fail("snapshot {}: {} shares given but the state was split into {}", where, shares.size(), a.parts);
  std::vector<uint8_t> out(a.full_bytes);
  std::vector<bool> seen(a.parts, false);
  for (size_t i = 0; i < shares.size(); ++i) {
    const ShardInfo& s = info[i];
    if (s.full_bytes != a.full_bytes || s.full_crc != a.full_crc || s.parts != a.parts || s.group != a.group)
      fail("snapshot {}: share {} belongs to a different state (size {} / checksum {:08x} vs {} / {:08x}): the dp ranks' "
           "states were not identical", where, s.index, s.full_bytes, s.full_crc, a.full_bytes, a.full_crc);
    if (seen[s.index]) fail("snapshot {}: share {} of {} given twice", where, s.index, s.parts);
    seen[s.index] = true;
    if (s.bytes > 0) std::memcpy(out.data() + s.offset, shard_payload(shares[i].data()), s.bytes);
  }
  const uint32_t c = out.empty() ? 0 : crc32c(out.data(), out.size());
  if (c != a.full_crc)
    fail("snapshot {}: the assembled state has CRC32C {:08x}, the shares recorded {:08x}", where, c, a.full_crc);
  return out;
}

}  // namespace strata::snapshot
