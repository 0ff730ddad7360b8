// CRC32C (Castagnoli) through ISA-L's crc32_iscsi, the checksum of every checkpoint and shard.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata {

uint32_t crc32c(const void* data, size_t n, uint32_t seed = 0);

}  // namespace strata
