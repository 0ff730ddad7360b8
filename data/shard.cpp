#include "data/shard.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/crc32c.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"

namespace strata::data {
namespace {

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t dtype_bytes;
  uint64_t n_tokens;
  uint64_t n_docs;
  uint32_t payload_crc;
  uint32_t header_crc;  // CRC32C of the bytes before this field
  char reserved[24];
};
static_assert(sizeof(Header) == 64);
constexpr size_t kHeaderCrcBytes = offsetof(Header, header_crc);

}  // namespace

ShardInfo write_shard(const std::filesystem::path& path, const std::vector<int32_t>& tokens,
                      const std::vector<uint64_t>& doc_starts, int64_t vocab_size) {
  ShardInfo info;
  info.dtype_bytes = vocab_size <= 65536 ? 2 : 4;
  info.n_tokens = tokens.size();
  info.n_docs = doc_starts.size();
  std::string payload(tokens.size() * info.dtype_bytes + (doc_starts.size() + 1) * 8, '\0');
  char* p = payload.data();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size)
      fail("write_shard '{}': token {} at position {} is outside the vocabulary [0, {})", path.string(), tokens[i], i,
           vocab_size);
    if (info.dtype_bytes == 2) {
      uint16_t v = static_cast<uint16_t>(tokens[i]);
      std::memcpy(p + i * 2, &v, 2);
    } else {
      uint32_t v = static_cast<uint32_t>(tokens[i]);
      std::memcpy(p + i * 4, &v, 4);
    }
  }
  char* q = p + tokens.size() * info.dtype_bytes;
  for (size_t d = 0; d < doc_starts.size(); ++d) std::memcpy(q + d * 8, &doc_starts[d], 8);
  uint64_t end = tokens.size();
  std::memcpy(q + doc_starts.size() * 8, &end, 8);
  info.crc32c = crc32c(payload.data(), payload.size());

  Header h{};
  std::memcpy(h.magic, kShardMagic, 8);
  h.version = kShardVersion;
  h.dtype_bytes = info.dtype_bytes;
  h.n_tokens = info.n_tokens;
  h.n_docs = info.n_docs;
  h.payload_crc = info.crc32c;
  h.header_crc = crc32c(&h, kHeaderCrcBytes);
  std::string bytes(reinterpret_cast<const char*>(&h), sizeof(h));
  bytes += payload;
  write_file_atomic(path, bytes);
  return info;
}

ShardReader::ShardReader(const std::filesystem::path& path, bool verify_checksum) : path_(path.string()) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open shard '{}': {}", path_, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < sizeof(Header)) {
    ::close(fd);
    fail("shard '{}' is truncated: {} bytes, shorter than the 64-byte header", path_, size_);
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail("cannot mmap shard '{}': {}", path_, std::strerror(errno));
  base_ = static_cast<const unsigned char*>(m);
  Header h;
  std::memcpy(&h, base_, sizeof(h));
  auto bad = [&](const std::string& why) {
    ::munmap(const_cast<unsigned char*>(base_), size_);
    base_ = nullptr;
    fail("shard '{}': {}", path_, why);
  };
  if (std::memcmp(h.magic, kShardMagic, 8) != 0) bad("not a Strata token shard (bad magic at byte offset 0)");
  if (h.header_crc != crc32c(&h, kHeaderCrcBytes)) bad("header checksum mismatch (bytes 0-39 are corrupt)");
  if (h.version != kShardVersion) bad(fmt::format("unsupported version {} (this build reads {})", h.version, kShardVersion));
  if (h.dtype_bytes != 2 && h.dtype_bytes != 4) bad(fmt::format("invalid dtype width {} at byte offset 12", h.dtype_bytes));
  if (h.n_tokens > (uint64_t(1) << 48) || h.n_docs > (uint64_t(1) << 48))
    bad(fmt::format("header claims {} tokens and {} documents, an impossible size", h.n_tokens, h.n_docs));
  size_t expect = sizeof(Header) + h.n_tokens * h.dtype_bytes + (h.n_docs + 1) * 8;
  if (size_ < expect)
    bad(fmt::format("truncated: {} bytes on disk, the header implies {} (first missing byte at offset {})", size_, expect,
                    size_));
  if (size_ > expect)
    bad(fmt::format("{} unexpected trailing bytes after offset {}", size_ - expect, expect));
  info_ = ShardInfo{h.n_tokens, h.n_docs, h.dtype_bytes, h.payload_crc};
  if (verify_checksum && crc32c(base_ + sizeof(Header), size_ - sizeof(Header)) != h.payload_crc)
    bad("payload checksum mismatch: the token data is corrupt");
}

ShardReader::~ShardReader() {
  if (base_) ::munmap(const_cast<unsigned char*>(base_), size_);
}

void ShardReader::read(uint64_t start, uint64_t n, int64_t* out) const {
  if (start + n > info_.n_tokens)
    fail("shard '{}': read of tokens [{}, {}) past the end ({} tokens)", path_, start, start + n, info_.n_tokens);
  const unsigned char* p = base_ + sizeof(Header);
  if (info_.dtype_bytes == 2) {
    for (uint64_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, p + (start + i) * 2, 2);
      out[i] = v;
    }
  } else {
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t v;
      std::memcpy(&v, p + (start + i) * 4, 4);
      out[i] = v;
    }
  }
}

uint64_t ShardReader::doc_start(uint64_t doc) const {
  if (doc > info_.n_docs) fail("shard '{}': document {} out of range ({} documents)", path_, doc, info_.n_docs);
  uint64_t v;
  std::memcpy(&v, base_ + sizeof(Header) + info_.n_tokens * info_.dtype_bytes + doc * 8, 8);
  return v;
}

}  // namespace strata::data
