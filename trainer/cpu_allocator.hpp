// A caching allocator for CPU tensors. A training step frees and re-requests the same large buffers
// (activations, gradients, logits) every step; through glibc each of those above its mmap threshold
// is a fresh mapping whose pages the kernel zeroes on first touch and unmaps on free, which shows as
// page faults and clear_page in a CPU profile (tens of thousands of faults per step for a 100M model).
// This allocator keeps freed large blocks and hands them back for requests of the same size (best
// fit, at most 1/8 larger), so a steady training loop stops faulting after its first step.
//
// Small requests (below `min_bytes`) go to c10's default CPU allocation as before. Blocks keep c10's
// 64-byte alignment, so kernels see the same alignment (and give the same results). Cached bytes are
// capped (`cap_bytes`); a block freed beyond the cap goes back to the system, and a failed allocation
// releases the cache and tries once more. Thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata::trainer {

struct CpuCacheStats {
  int64_t hits = 0;          // large requests served from the cache
  int64_t misses = 0;        // large requests that went to the system
  int64_t small = 0;         // requests below min_bytes (not cached)
  int64_t cached_bytes = 0;  // held in the cache now (free blocks)
  int64_t live_bytes = 0;    // large blocks handed out and not yet freed
};

struct CpuCacheOptions {
  bool enabled = true;                 // false: every request goes to the system, the cache is emptied
  size_t min_bytes = size_t(1) << 16;  // smaller requests are not cached
  size_t cap_bytes = 0;                // 0: a quarter of physical memory, at most 16 GiB
};

// Makes the caching allocator c10's CPU allocator for this process (tensors allocated before keep
// their own deleters). Calling it again changes the options (c10 cannot take an allocator back, so
// `enabled = false` is how a process that installed it turns caching off). Returns the cap in bytes.
size_t install_cpu_caching_allocator(const CpuCacheOptions& opt = {});
// Whether it is installed and c10's current CPU allocator.
bool cpu_caching_allocator_active();
CpuCacheStats cpu_cache_stats();
// Returns every cached (free) block to the system; live blocks are unaffected.
void cpu_cache_release();

}  // namespace strata::trainer
