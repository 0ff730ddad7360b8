#include "core/crc32c.hpp"

#include <isa-l/crc.h>

namespace strata {

uint32_t crc32c(const void* data, size_t n, uint32_t seed) {
  // crc32_iscsi works on (inverted) raw state; wrap it to the standard CRC32C convention.
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  uint32_t crc = ~seed;
  while (n > 0) {
    int chunk = n > (1u << 30) ? (1 << 30) : static_cast<int>(n);
    crc = crc32_iscsi(p, chunk, crc);
    p += chunk;
    n -= chunk;
  }
  return ~crc;
}

}  // namespace strata
