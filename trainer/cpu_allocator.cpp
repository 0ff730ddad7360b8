#include "trainer/cpu_allocator.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

#include <unistd.h>

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>

namespace strata::trainer {
namespace {

constexpr size_t kPage = 4096;

size_t default_cap() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  const size_t phys = pages > 0 && page > 0 ? size_t(pages) * size_t(page) : size_t(8) << 30;
  return std::min(phys / 4, size_t(16) << 30);
}

void cached_delete(void* p);

class CachingCpuAllocator final : public c10::Allocator {
 public:
  void configure(const CpuCacheOptions& opt) {
    std::lock_guard<std::mutex> lock(mu_);
    min_bytes_ = opt.enabled ? std::max(opt.min_bytes, size_t(1)) : SIZE_MAX;
    cap_bytes_ = !opt.enabled ? 0 : opt.cap_bytes ? opt.cap_bytes : default_cap();
    trim_locked(cap_bytes_.load());
  }
  size_t cap() const { return cap_bytes_; }

  c10::DataPtr allocate(size_t n) override {
    if (n < min_bytes_) {
      small_.fetch_add(1, std::memory_order_relaxed);
      void* p = n ? c10::alloc_cpu(n) : nullptr;
      return {p, p, &cached_delete, c10::Device(c10::DeviceType::CPU)};
    }
    const size_t want = (n + kPage - 1) / kPage * kPage;
    void* p = nullptr;
    size_t got = want;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(want);  // best fit: the smallest cached block that holds n
      if (it != free_.end() && it->first <= want + want / 8) {
        p = it->second, got = it->first;
        free_.erase(it);
        stats_.cached_bytes -= static_cast<int64_t>(got);
        ++stats_.hits;
      } else {
        ++stats_.misses;
      }
    }
    if (!p) p = system_alloc(want);
    std::lock_guard<std::mutex> lock(mu_);
    live_[p] = got;
    stats_.live_bytes += static_cast<int64_t>(got);
    return {p, p, &cached_delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &cached_delete; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  void release(void* p) {
    if (!p) return;
    std::unique_lock<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {  // a small block: never cached
      lock.unlock();
      c10::free_cpu(p);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    stats_.live_bytes -= static_cast<int64_t>(size);
    if (static_cast<size_t>(stats_.cached_bytes) + size > cap_bytes_) {
      lock.unlock();
      c10::free_cpu(p);
      return;
    }
    free_.emplace(size, p);
    stats_.cached_bytes += static_cast<int64_t>(size);
  }

  void release_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    trim_locked(0);
  }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    auto s = stats_;
    s.small = small_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  void* system_alloc(size_t bytes) {
    try {
      return c10::alloc_cpu(bytes);
    } catch (const c10::Error&) {  // out of memory: give the cache back and try once more
      release_cache();
      return c10::alloc_cpu(bytes);
    }
  }

  // Frees cached blocks, largest first, until at most `keep` bytes stay cached.
  void trim_locked(size_t keep) {
    while (!free_.empty() && static_cast<size_t>(stats_.cached_bytes) > keep) {
      auto it = std::prev(free_.end());
      stats_.cached_bytes -= static_cast<int64_t>(it->first);
      c10::free_cpu(it->second);
      free_.erase(it);
    }
  }

  std::mutex mu_;
  std::atomic<size_t> min_bytes_{size_t(1) << 16}, cap_bytes_{default_cap()};
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> live_;
  CpuCacheStats stats_;
  std::atomic<int64_t> small_{0};
};

// Never destroyed: tensors freed during static destruction still find it.
CachingCpuAllocator& instance() {
  static auto* a = new CachingCpuAllocator();
  return *a;
}

void cached_delete(void* p) { instance().release(p); }

}  // namespace

size_t install_cpu_caching_allocator(const CpuCacheOptions& opt) {
  auto& a = instance();
  a.configure(opt);
  // Priority above c10's default (0) so a later default registration does not replace it.
  c10::SetCPUAllocator(&a, /*priority=*/1);
  return a.cap();
}

bool cpu_caching_allocator_active() { return c10::GetCPUAllocator() == &instance(); }

CpuCacheStats cpu_cache_stats() { return instance().stats(); }

void cpu_cache_release() { instance().release_cache(); }

}  // namespace strata::trainer
