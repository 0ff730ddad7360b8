#include "parallel/world.hpp"

#include <cstdlib>
#include <string>

#include "core/error.hpp"

namespace strata::parallel {
namespace {
int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return std::stoll(v);
  } catch (const std::exception&) {
    fail("environment variable {}='{}' is not an integer", name, v);
  }
}
}  // namespace

World world_from_env() {
  World w;
  w.rank = env_int("RANK", 0);
  w.size = env_int("WORLD_SIZE", 1);
  w.local_rank = env_int("LOCAL_RANK", 0);
  w.local_size = env_int("LOCAL_WORLD_SIZE", 1);
  if (w.rank < 0 || w.rank >= w.size) fail("RANK={} is outside WORLD_SIZE={}", w.rank, w.size);
  return w;
}

}  // namespace strata::parallel
