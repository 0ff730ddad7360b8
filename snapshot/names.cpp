#include "snapshot/names.hpp"

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "core/error.hpp"

namespace strata::snapshot {

std::string rank_segment(const std::string& smp_name, int64_t node, int64_t local_rank) {
  return fmt::format("/strata-{}-n{}-r{}", smp_name, node, local_rank);
}

std::string lock_path(const std::string& smp_name, int64_t node) {
  return fmt::format("/dev/shm/strata-{}-n{}.lock", smp_name, node);
}

std::string resolve_smp_name(const SnapshotConfig& c, const std::string& run_dir) {
  if (!c.smp_name.empty()) {
    for (char ch : c.smp_name)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.')
        fail("snapshot.smp_name '{}': use letters, digits, '_' and '.' only", c.smp_name);
    return c.smp_name;
  }
  const std::string abs = std::filesystem::absolute(run_dir).lexically_normal().string();
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char ch : abs) h = (h ^ ch) * 1099511628211ULL;
  return fmt::format("{:016x}", h);
}

int64_t resolve_ranks_per_node(const SnapshotConfig& c, int64_t local_world_size) {
  if (c.ranks_per_node > 0) return c.ranks_per_node;
  if (const char* e = std::getenv("STRATA_SNAPSHOT_RANKS_PER_NODE")) {
    char* end = nullptr;
    const long v = std::strtol(e, &end, 10);
    if (!*e || *end || v < 1) fail("STRATA_SNAPSHOT_RANKS_PER_NODE='{}' is not a positive integer", e);
    return v;
  }
  return std::max<int64_t>(1, local_world_size);
}

std::vector<Endpoint> smp_endpoints(const SnapshotConfig& c, int64_t nodes) {
  std::vector<std::string> hosts;
  std::stringstream ss(c.hosts);
  for (std::string h; std::getline(ss, h, ',');)
    if (!h.empty()) hosts.push_back(h);
  if (!hosts.empty() && static_cast<int64_t>(hosts.size()) != nodes)
    fail("snapshot.hosts lists {} hosts but the job has {} snapshot nodes", hosts.size(), nodes);
  std::vector<Endpoint> out;
  for (int64_t i = 0; i < nodes; ++i)
    out.push_back({hosts.empty() ? "127.0.0.1" : hosts[i], static_cast<int>(c.port + i)});
  return out;
}

}  // namespace strata::snapshot
