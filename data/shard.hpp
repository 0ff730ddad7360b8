// The token-shard file format (version 1), little-endian:
//   header (64 bytes): magic "STRSHRD1", u32 version, u32 dtype bytes (2 or 4), u64 n_tokens,
//                      u64 n_docs, u32 CRC32C of the payload, u32 CRC32C of the header's first 40
//                      bytes, 24 reserved bytes;
//   payload: n_tokens tokens (uint16 or uint32), then n_docs + 1 u64 document start offsets.
// Documents are separated by EOS inside the token stream; the offsets let readers find them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace strata::data {

inline constexpr char kShardMagic[8] = {'S', 'T', 'R', 'S', 'H', 'R', 'D', '1'};
inline constexpr uint32_t kShardVersion = 1;

struct ShardInfo {
  uint64_t n_tokens = 0;
  uint64_t n_docs = 0;
  uint32_t dtype_bytes = 2;
  uint32_t crc32c = 0;
};

// Writes a shard atomically; dtype is uint16 when vocab_size <= 65536, else uint32.
ShardInfo write_shard(const std::filesystem::path& path, const std::vector<int32_t>& tokens,
                      const std::vector<uint64_t>& doc_starts, int64_t vocab_size);

// A read-only memory map of one shard, validated on open (sizes checked against the file).
class ShardReader {
 public:
  explicit ShardReader(const std::filesystem::path& path, bool verify_checksum = false);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const ShardInfo& info() const { return info_; }
  const std::string& path() const { return path_; }
  // Copies tokens [start, start + n) into out.
  void read(uint64_t start, uint64_t n, int64_t* out) const;
  uint64_t doc_start(uint64_t doc) const;

 private:
  std::string path_;
  ShardInfo info_;
  const unsigned char* base_ = nullptr;
  size_t size_ = 0;
};

}  // namespace strata::data
