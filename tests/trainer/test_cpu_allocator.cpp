// The caching CPU allocator (trainer/cpu_allocator.hpp): reuse, best-fit bound, alignment, the cap,
// release, no page faults once warm, and a training run that is bitwise the same with and without it.
#include <cstdint>

#include <sys/resource.h>

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_dataset.hpp"
#include "tests/support/tiny_recipe.hpp"
#include "trainer/cpu_allocator.hpp"
#include "trainer/trainer.hpp"

using namespace strata;

namespace {

int64_t minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// A fresh cache with the given cap (everything cached before is released).
void fresh_cache(size_t cap = 0) {
  trainer::CpuCacheOptions off;
  off.enabled = false;
  trainer::install_cpu_caching_allocator(off);
  trainer::CpuCacheOptions on;
  on.cap_bytes = cap;
  trainer::install_cpu_caching_allocator(on);
}

}  // namespace

TEST_CASE("the CPU cache hands a freed block back for the same size", "[cpu_cache]") {
  fresh_cache();
  REQUIRE(trainer::cpu_caching_allocator_active());
  const auto before = trainer::cpu_cache_stats();
  void* first = nullptr;
  {
    auto t = at::empty({1 << 18}, at::kFloat);  // 1 MiB
    first = t.data_ptr();
    CHECK(reinterpret_cast<uintptr_t>(first) % 64 == 0);  // c10's alignment, kept
    const auto live = trainer::cpu_cache_stats();
    CHECK(live.misses == before.misses + 1);
    CHECK(live.live_bytes == before.live_bytes + (1 << 20));
  }
  const auto freed = trainer::cpu_cache_stats();
  CHECK(freed.cached_bytes == 1 << 20);
  CHECK(freed.live_bytes == before.live_bytes);
  {
    auto t = at::empty({(1 << 18) - 100}, at::kFloat);  // rounds up to the same 4 KiB pages
    CHECK(t.data_ptr() == first);
    CHECK(trainer::cpu_cache_stats().hits == before.hits + 1);
    CHECK(trainer::cpu_cache_stats().cached_bytes == 0);
  }
  {
    auto small = at::empty({1 << 16}, at::kFloat);  // 256 KiB: the cached 1 MiB block is more than 1/8 too big
    CHECK(small.data_ptr() != first);
    auto tiny = at::empty({100}, at::kFloat);  // below min_bytes: not cached
    CHECK(trainer::cpu_cache_stats().small > before.small);
  }
  trainer::cpu_cache_release();
  CHECK(trainer::cpu_cache_stats().cached_bytes == 0);
}

TEST_CASE("the CPU cache keeps at most its cap", "[cpu_cache]") {
  fresh_cache(/*cap=*/3 << 20);
  {
    auto a = at::empty({1 << 18}, at::kFloat), b = at::empty({1 << 18}, at::kFloat);
    auto c = at::empty({1 << 18}, at::kFloat), d = at::empty({1 << 18}, at::kFloat);
  }
  CHECK(trainer::cpu_cache_stats().cached_bytes == 3 << 20);  // the fourth went back to the system
  fresh_cache();
  CHECK(trainer::cpu_cache_stats().cached_bytes == 0);
}

TEST_CASE("a warm CPU cache takes no page faults on repeated large allocations", "[cpu_cache]") {
  fresh_cache();
  auto step = [] {
    auto x = at::ones({8 << 20}, at::kFloat);  // 32 MiB: mmap-backed, zero-filled pages through glibc
    auto y = x * 2.0f;
    return y.sum().item<double>();
  };
  step();  // warm: the cache now holds both buffers
  const int64_t f0 = minor_faults();
  double s = 0;
  for (int i = 0; i < 10; ++i) s += step();
  const int64_t faults = minor_faults() - f0;
  CHECK(s == 10.0 * 2.0 * (8 << 20));
  INFO("minor faults over 10 warm steps: " << faults);
  CHECK(faults < 200);  // uncached, each step touches 64 MiB of fresh pages (16K faults without huge pages)
}

TEST_CASE("training with the CPU cache is bitwise the same as without", "[cpu_cache][trainer][e2e]") {
  testing::TempDir dir;
  auto ds = testing::prepare_tiny_dataset(dir);
  auto run = [&](const std::string& name, bool cache) {
    auto cfg = testing::tiny_recipe(ds, (dir / name).string(), 8);
    cfg.train.cpu_cache = cache;
    trainer::Trainer t(cfg, false);
    auto r = t.run();
    CHECK(trainer::cpu_caching_allocator_active());
    return r.losses;
  };
  const auto with = run("with", true);
  const auto hits = trainer::cpu_cache_stats().hits;
  CHECK(hits > 0);
  const auto without = run("without", false);
  CHECK(trainer::cpu_cache_stats().hits == hits);  // disabled: nothing served from the cache
  REQUIRE(with.size() == 8);
  REQUIRE(without.size() == 8);
  for (size_t i = 0; i < with.size(); ++i) CHECK(with[i] == without[i]);
  trainer::install_cpu_caching_allocator();  // on again for the tests that follow
}
