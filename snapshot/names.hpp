// Where a node's snapshot pieces live: shared-memory segment names, the SMP's lock file and its
// TCP endpoint, and which node a rank belongs to.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "snapshot/config.hpp"
#include "snapshot/wire.hpp"

namespace strata::snapshot {

std::string rank_segment(const std::string& smp_name, int64_t node, int64_t local_rank);  // "/strata-<name>-n<node>-r<lr>"
std::string lock_path(const std::string& smp_name, int64_t node);                         // /dev/shm/strata-<name>-n<node>.lock
// "" -> a name derived from the absolute run directory, so a restarted job finds its segments.
std::string resolve_smp_name(const SnapshotConfig& c, const std::string& run_dir);
// ranks_per_node from the recipe, else $STRATA_SNAPSHOT_RANKS_PER_NODE, else LOCAL_WORLD_SIZE.
int64_t resolve_ranks_per_node(const SnapshotConfig& c, int64_t local_world_size);
std::vector<Endpoint> smp_endpoints(const SnapshotConfig& c, int64_t nodes);

}  // namespace strata::snapshot
