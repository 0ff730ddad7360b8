// Recipe section `snapshot:` (in-memory snapshots held by the node's SMP, spec specs/snapshots.md).
#pragma once
#include <cstdint>
#include <string>

namespace strata::snapshot {

struct SnapshotConfig {
  bool enabled = false;
  int64_t every_steps = 1;     // snapshot after every N-th optimizer step
  int64_t ec_k = 0;            // Reed-Solomon data fragments per stripe; 0 = no erasure coding
  int64_t ec_m = 1;            // parity fragments (nodes that may be lost); a group is k + m nodes
  bool shard_dp = true;        // with erasure coding, each dp rank keeps only its 1/dp share of the state
  int64_t persist_every = 0;   // the SMP writes every P-th snapshot as a disk checkpoint; 0 = never
  std::string smp_name;        // shared-memory / SMP name; "" = derived from run.dir
  int64_t ranks_per_node = 0;  // ranks sharing one SMP ("node"); 0 = $STRATA_SNAPSHOT_RANKS_PER_NODE or LOCAL_WORLD_SIZE
  int64_t port = 29700;        // node i's SMP listens on port + i
  std::string hosts;           // comma-separated host of each node's SMP; "" = 127.0.0.1 for all
  double smp_idle_exit_s = 0;  // an SMP with no new snapshot for this long exits and frees its memory; 0 = never
};

}  // namespace strata::snapshot
