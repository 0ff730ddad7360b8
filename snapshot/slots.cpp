#include "snapshot/slots.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/crc32c.hpp"
#include "core/error.hpp"

namespace strata::snapshot {

namespace {
constexpr uint64_t kMagic = 0x31544f4c53525453ULL;  // "STRSLOT1"
constexpr uint32_t kFormat = 1;
constexpr uint64_t kHead = 64;  // segment header; each slot header is 64 bytes too

struct SegmentHeader {
  uint64_t magic;
  uint64_t capacity;  // payload bytes per slot
  uint32_t format;
};
}  // namespace

struct SlotHeader {
  std::atomic<uint32_t> committed;
  uint32_t format;
  int64_t step;
  uint64_t seq;
  uint64_t bytes;
  uint32_t crc;
};
static_assert(sizeof(SlotHeader) <= 64 && sizeof(SegmentHeader) <= kHead);

static uint64_t segment_size(uint64_t capacity) { return kHead + 2 * (64 + capacity); }

SlotHeader* ShmSlots::header(int s) const { return reinterpret_cast<SlotHeader*>(base_ + kHead + s * (64 + reinterpret_cast<SegmentHeader*>(base_)->capacity)); }
uint8_t* ShmSlots::payload(int s) const { return reinterpret_cast<uint8_t*>(header(s)) + 64; }

std::optional<ShmSlots> ShmSlots::open(const std::string& name, bool create) {
  if (name.empty() || name[0] != '/' || name.find('/', 1) != std::string::npos || name.size() > 250)
    fail("snapshot: shared-memory name '{}' must start with '/' and contain no other '/'", name);
  int fd = ::shm_open(name.c_str(), O_RDWR | (create ? O_CREAT : 0), 0600);
  if (fd < 0) {
    if (errno == ENOENT && !create) return std::nullopt;
    fail("snapshot: shm_open('{}') failed: {}", name, std::strerror(errno));
  }
  ShmSlots s;
  s.name_ = name;
  s.fd_ = fd;
  struct stat st{};
  ::fstat(fd, &st);
  if (static_cast<uint64_t>(st.st_size) < segment_size(0)) {
    if (!create) return std::nullopt;  // a creator has not sized it yet
    if (::ftruncate(fd, static_cast<off_t>(segment_size(0))) != 0)
      fail("snapshot: cannot size shared memory '{}': {}", name, std::strerror(errno));
    s.map(0);
    auto* sh = reinterpret_cast<SegmentHeader*>(s.base_);
    sh->capacity = 0, sh->format = kFormat;
    std::atomic_thread_fence(std::memory_order_release);
    sh->magic = kMagic;
    return s;
  }
  s.map(0);
  auto* sh = reinterpret_cast<SegmentHeader*>(s.base_);
  if (sh->magic != kMagic || sh->format != kFormat)
    fail("snapshot: shared memory '{}' is not a Strata slot segment of format {} (stale segment? remove /dev/shm{})", name,
         kFormat, name);
  s.refresh();
  return s;
}

void ShmSlots::unlink(const std::string& name) { ::shm_unlink(name.c_str()); }

void ShmSlots::map(uint64_t capacity) {
  if (base_) ::munmap(base_, mapped_);
  struct stat st{};
  ::fstat(fd_, &st);
  mapped_ = std::max<size_t>(static_cast<size_t>(st.st_size), segment_size(capacity));
  void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) fail("snapshot: mmap of '{}' ({} bytes) failed: {}", name_, mapped_, std::strerror(errno));
  base_ = static_cast<uint8_t*>(p);
}

void ShmSlots::refresh() const {
  auto* sh = reinterpret_cast<SegmentHeader*>(base_);
  if (segment_size(sh->capacity) > mapped_) const_cast<ShmSlots*>(this)->map(sh->capacity);
}

ShmSlots::ShmSlots(ShmSlots&& o) noexcept { *this = std::move(o); }
ShmSlots& ShmSlots::operator=(ShmSlots&& o) noexcept {
  std::swap(name_, o.name_), std::swap(fd_, o.fd_), std::swap(base_, o.base_), std::swap(mapped_, o.mapped_);
  std::swap(writing_, o.writing_), std::swap(writing_bytes_, o.writing_bytes_);
  return *this;
}
ShmSlots::~ShmSlots() {
  if (base_) ::munmap(base_, mapped_);
  if (fd_ >= 0) ::close(fd_);
}

std::vector<SlotInfo> ShmSlots::committed() const {
  refresh();
  std::vector<SlotInfo> out;
  for (int s = 0; s < 2; ++s) {
    SlotHeader* h = header(s);
    if (h->committed.load(std::memory_order_acquire) != 1 || h->format != kFormat) continue;
    out.push_back({s, h->step, h->seq, h->bytes});
  }
  if (out.size() == 2 && out[1].seq > out[0].seq) std::swap(out[0], out[1]);
  return out;
}

uint8_t* ShmSlots::begin_write(uint64_t bytes) {
  refresh();
  auto* sh = reinterpret_cast<SegmentHeader*>(base_);
  if (bytes > sh->capacity) {  // grow: both slots are dropped (their offsets move)
    for (int s = 0; s < 2; ++s) header(s)->committed.store(0, std::memory_order_release);
    const uint64_t cap = bytes + bytes / 8 + 4096;
    if (::ftruncate(fd_, static_cast<off_t>(segment_size(cap))) != 0)
      fail("snapshot: cannot grow shared memory '{}' to {} bytes: {} (is /dev/shm large enough?)", name_,
           segment_size(cap), std::strerror(errno));
    map(cap);
    sh = reinterpret_cast<SegmentHeader*>(base_);
    sh->capacity = cap;
  }
  auto c = committed();
  writing_ = c.empty() ? 0 : 1 - c[0].slot;  // never the newest committed slot
  SlotHeader* h = header(writing_);
  h->committed.store(0, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  writing_bytes_ = bytes;
  return payload(writing_);
}

void ShmSlots::commit(int64_t step) {
  if (writing_ < 0) fail("snapshot: commit of '{}' without begin_write", name_);
  SlotHeader* h = header(writing_);
  uint64_t seq = 0;
  for (const auto& c : committed()) seq = std::max(seq, c.seq);
  h->format = kFormat;
  h->step = step;
  h->seq = seq + 1;
  h->bytes = writing_bytes_;
  h->crc = crc32c(payload(writing_), writing_bytes_);
  std::atomic_thread_fence(std::memory_order_release);
  h->committed.store(1, std::memory_order_release);  // the flip: the snapshot exists from here on
  writing_ = -1;
}

std::optional<std::pair<int64_t, std::vector<uint8_t>>> ShmSlots::read(int64_t step) const {
  for (const auto& c : committed()) {
    if (step >= 0 && c.step != step) continue;
    SlotHeader* h = header(c.slot);
    if (c.bytes > reinterpret_cast<SegmentHeader*>(base_)->capacity) continue;
    std::vector<uint8_t> out(payload(c.slot), payload(c.slot) + c.bytes);
    const uint32_t crc = h->crc;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (h->committed.load(std::memory_order_acquire) != 1 || h->seq != c.seq) continue;  // overwritten meanwhile
    if (crc32c(out.data(), out.size()) != crc) continue;  // torn or corrupt: never loaded
    return std::make_pair(c.step, std::move(out));
  }
  return std::nullopt;
}

void ShmSlots::drop_after(int64_t step) {
  for (const auto& c : committed())
    if (c.step > step) header(c.slot)->committed.store(0, std::memory_order_release);
}

void ShmSlots::corrupt_for_test(int64_t step) {
  for (const auto& c : committed())
    if (c.step == step && c.bytes > 0) payload(c.slot)[c.bytes / 2] ^= 0x5a;
}

}  // namespace strata::snapshot
