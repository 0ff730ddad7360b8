// A double-buffered snapshot slot pair in POSIX shared memory (/dev/shm), one per local rank. Each
// slot has a header {step, bytes, CRC32C, committed flag, sequence number, format version}. A writer
// fills the slot that does not hold the newest committed snapshot and commits by flipping the
// header's flag last, after a release fence, so a writer killed mid-copy leaves that slot
// uncommitted and the other slot's snapshot intact. A reader takes the newest committed slot whose
// checksum verifies, and re-checks the header after copying (a concurrent writer invalidates it).
// Segments outlive the processes that map them: they belong to the node's SMP (`strata smp`).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata::snapshot {

struct SlotInfo {
  int slot = -1;
  int64_t step = -1;
  uint64_t seq = 0;
  uint64_t bytes = 0;
};

class ShmSlots {
 public:
  // Opens the segment `name` ("/strata-..."), creating it when `create`; nullopt if it does not exist.
  static std::optional<ShmSlots> open(const std::string& name, bool create);
  static void unlink(const std::string& name);
  ShmSlots(ShmSlots&& o) noexcept;
  ShmSlots& operator=(ShmSlots&& o) noexcept;
  ShmSlots(const ShmSlots&) = delete;
  ~ShmSlots();

  const std::string& name() const { return name_; }
  // Writing: begin_write returns `bytes` of room in the slot to fill (growing the segment if it is too
  // small, which drops both slots), commit publishes it as `step`. abandon leaves it uncommitted.
  uint8_t* begin_write(uint64_t bytes);
  void commit(int64_t step);
  // Committed slots (header only, checksum not yet checked), newest first.
  std::vector<SlotInfo> committed() const;
  // A verified copy of the newest committed snapshot with the given step (any step if step < 0);
  // nullopt when none is committed, its checksum fails, or a writer overwrote it while copying.
  std::optional<std::pair<int64_t, std::vector<uint8_t>>> read(int64_t step = -1) const;
  // Uncommits every slot whose step is greater than `step` (a restart from `step` makes them stale).
  void drop_after(int64_t step);
  // Test hook: flips a byte of committed `step`'s payload (a corrupted slot).
  void corrupt_for_test(int64_t step);

 private:
  ShmSlots() = default;
  void map(uint64_t capacity);
  void refresh() const;  // remap if another process grew the segment
  struct SlotHeader* header(int s) const;
  uint8_t* payload(int s) const;
  std::string name_;
  int fd_ = -1;
  mutable uint8_t* base_ = nullptr;
  mutable size_t mapped_ = 0;
  int writing_ = -1;
  uint64_t writing_bytes_ = 0;
};

}  // namespace strata::snapshot
