// The snapshot management process (`strata smp`): one per node, started outside the trainer's
// process tree (by the node's local rank 0 through setsid + double fork, or by the launch script),
// idempotent through a lock file. It
//   - keeps the node's shared-memory slot segments (the trainers write them; they survive trainer
//     crashes and are unlinked when the SMP exits cleanly),
//   - with erasure coding, runs background rounds over its group of k + m nodes: the group's leader
//     (the lowest live node) picks the newest version every node has committed, every SMP copies
//     that version of its ranks' slots into its staging buffer (STAGE), computes its m parity blocks
//     from the other nodes' blocks (ENCODE, ec_layout.hpp) and the round is made current (COMMIT);
//     the previous committed version is served until then,
//   - when started on a node whose segments are gone (a lost node), rebuilds them from the other
//     nodes' staged data and parity before answering the trainers,
//   - on node 0, writes the snapshots of global rank 0 at multiples of P snapshots as disk
//     checkpoints (background), leaving the steps the trainer checkpoints itself to the trainer;
//     when rank 0's slot holds only its dp share (dp_shard.hpp), the other shares come from the
//     slots of the ranks its header names, on whichever nodes they run (kGetSlot).
// Transport: wire.hpp (peer-to-peer TCP). Trainers ask their SMP for staged versions (kSteps,
// kGetRank) when restoring.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "snapshot/wire.hpp"

namespace strata::snapshot {

enum SmpOp : uint32_t {
  kPing = 1,    // -> value = node
  kNewest,      // -> value = newest step every local rank has committed, or -1
  kStage,       // v: copy version v of the local slots into staging -> value = packed bytes
  kEncode,      // v, b = S: compute this node's parity blocks of version v
  kCommit,      // v: make version v (staged + encoded) the current one
  kGetData,     // a = block, v, b = S -> that block of the staged version v, zero-padded to S
  kGetParity,   // a = parity index, v, b = S -> that parity block of version v
  kCommitted,   // -> value = committed version (-1 none), payload = S (8 bytes)
  kSteps,       // -> status 2 while rebuilding; payload = staged versions (int64 each), value = 1 if rebuilt
  kGetRank,     // a = local rank, v -> that rank's serialized state from staging
  kGetSlot,     // a = local rank, v -> that rank's committed slot of step v (dp shares for persisting)
};

struct SmpOptions {
  std::string name;
  int64_t node = 0, nodes = 1, local_ranks = 1;
  int64_t ec_k = 0, ec_m = 1;  // ec_k = 0: no erasure coding
  std::vector<Endpoint> peers;  // one per node
  std::string persist_dir;      // checkpoint root for persisted snapshots ("" = none)
  int64_t persist_every_steps = 0, keep = 3;   // persist steps that are multiples of persist_every_steps
  int64_t skip_every = 0, skip_step = -1;       // ... except those the trainer writes itself (checkpoint.every, the last step)
  double idle_exit_s = 0, poll_s = 0.02;
};

// Runs until SIGTERM/SIGINT (or idle_exit_s without a new snapshot); returns the exit code. Returns
// 0 at once when another SMP already holds the node's lock.
int run_smp(const SmpOptions& o);

}  // namespace strata::snapshot
