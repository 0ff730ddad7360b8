// A dp rank's share of a serialized training state (spec specs/snapshots.md, section 2.1): data-
// parallel replicas hold the same state, so with erasure coding on each of the D ranks of a dp group
// keeps only bytes [i*C, (i+1)*C) of the serialized buffer (C = ceil(bytes / D)) in its slot; the
// union of the D shares is one full replica, rebuilt on restore by an all-gather over the group.
// A share is self-describing:
//   8 bytes magic "STRSHRD1" | u64 full bytes | u32 CRC32C of the full buffer | i32 parts D |
//   i32 index i | i32 0 | u64 offset | u64 share bytes | D x i64 world ranks of the group (by index) |
//   the share's bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "snapshot/serialize.hpp"

namespace strata::snapshot {

struct ShardInfo {
  uint64_t full_bytes = 0;
  uint32_t full_crc = 0;
  int32_t parts = 1, index = 0;
  uint64_t offset = 0, bytes = 0;
  std::vector<int64_t> group;  // world rank of each index
};

// Where share `index` of `parts` lies in a buffer of `full` bytes: {offset, bytes}.
std::pair<uint64_t, uint64_t> shard_range(uint64_t full, int64_t parts, int64_t index);
// Bytes `write_shard` produces.
uint64_t shard_size(uint64_t full, int64_t parts, int64_t index);
// Writes share `index` of `st` (whose crc() is `full_crc`) to dst; group.size() is the part count.
void write_shard(const PreparedState& st, uint32_t full_crc, const std::vector<int64_t>& group, int64_t index, uint8_t* dst);

bool is_shard(const uint8_t* p, uint64_t n);
// Parses and checks a share's header and size; `where` names it in errors.
ShardInfo read_shard(const uint8_t* p, uint64_t n, const std::string& where);
const uint8_t* shard_payload(const uint8_t* p);

// The full serialized buffer from all D shares (any order), checked: one share per index, the same
// full size / checksum / group in every header, contiguous ranges, and the CRC32C of the result.
std::vector<uint8_t> assemble_shards(const std::vector<std::vector<uint8_t>>& shares, const std::string& where);

}  // namespace strata::snapshot
