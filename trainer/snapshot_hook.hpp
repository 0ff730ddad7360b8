// The trainer's side of in-memory snapshots (recipe `snapshot:`, snapshot/): starts the node's SMP
// if none runs, copies the training state into this rank's shared-memory slot on a background
// thread after every `every_steps`-th optimizer step (the next optimizer step waits only if that
// copy is unfinished; the wait is measured as the snapshot stall; on CUDA the device-to-host copy runs
// on a side stream into pinned buffers, snapshot/device_stage.hpp), and on --resume finds the newest
// snapshot every rank holds (its own slot, or its SMP's erasure-coded staging, which is how a lost
// node comes back) and restores it when it is newer than the newest disk checkpoint.
// With erasure coding on (and snapshot.shard_dp), the dp replicas' identical states are split: each
// dp rank stores only its 1/dp share (snapshot/dp_shard.hpp) and a restore all-gathers the shares
// over the dp group; the first snapshot checks that the replicas really are identical (CRC32C over
// the group) and falls back to full copies, with a warning, when they are not.
// Under tp, pp or ZeRO-1 the state handed to start() is the rank's own local state (Trainer::
// capture_local_state); every snapshot carries its layout tag (snapshot/layout_tag.hpp) and restore()
// refuses one taken under another layout (all ranks then fall back to the disk checkpoint).
#pragma once
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/config.hpp"
#include "parallel/runtime.hpp"
#include "snapshot/config.hpp"
#include "snapshot/device_stage.hpp"
#include "snapshot/layout_tag.hpp"
#include "snapshot/serialize.hpp"
#include "snapshot/slots.hpp"
#include "snapshot/wire.hpp"

namespace strata::trainer {

class SnapshotHook {
 public:
  // resume = false drops whatever an earlier run left in this rank's slots.
  // ckpt / final_step: the trainer's own disk checkpoints, which the SMP does not persist again.
  // dp: this rank's data-parallel group; layout: this rank's place in the (tp, pp, dp) mesh, whose
  // tag every snapshot carries; its members capture the same state unless layout.zero1.
  // Under a per-rank layout (tp, pp or ZeRO-1) rank 0's state is not the whole state, so the SMP does
  // not persist snapshots to disk (snapshot.persist_every is ignored with a warning).
  SnapshotHook(const snapshot::SnapshotConfig& cfg, const std::string& run_dir, const checkpoint::CheckpointConfig& ckpt,
               int64_t final_step, const parallel::Runtime& runtime, std::shared_ptr<parallel::ProcessGroup> dp,
               const snapshot::RankLayout& layout, bool resume);
  ~SnapshotHook();

  // Collective over the world: the newest snapshot held by every rank, if it is newer than the disk
  // checkpoint `latest_disk` (nullopt: none); logs which one the run resumes from.
  std::optional<checkpoint::CheckpointState> restore(const std::optional<std::filesystem::path>& latest_disk);
  bool due(int64_t step) const { return step % cfg_.every_steps == 0; }
  // Hands a captured state to the background copy (waits for the previous copy first).
  void start(const checkpoint::CheckpointState& st);
  // Before the optimizer changes the weights: waits for the copy in flight (the stall).
  void before_update();
  // snapshot_stall_ms and snapshot_copy_ms since the last call, for the metrics row.
  std::vector<std::pair<std::string, double>> take_metrics();
  // Waits for the last copy and logs the totals.
  void finish();

 private:
  void worker();
  // Collective over the dp group: the full serialized state from this rank's slot bytes (a share is
  // completed by the other members' shares; a full copy is returned as is); nullopt if any member
  // lacks its bytes or the shares do not assemble.
  std::optional<std::vector<uint8_t>> complete_over_dp(std::optional<std::vector<uint8_t>> raw, int64_t step);
  snapshot::SnapshotConfig cfg_;
  snapshot::RankLayout layout_;
  std::shared_ptr<parallel::ProcessGroup> world_, dp_;
  bool shard_ = false, checked_ = false;  // storing 1/dp shares; replicas checked identical
  std::vector<int64_t> dp_ranks_;         // world rank of each dp index
  int64_t rank_ = 0, node_ = 0, local_ = 0, nodes_ = 1;
  snapshot::Endpoint smp_;
  std::optional<snapshot::ShmSlots> slots_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<snapshot::PreparedState> job_;
  std::optional<uint32_t> job_crc_;  // the job's full CRC32C when start() already computed it
  bool job_staged_ = false;          // the job's device tensors are still being copied (stager_)
  snapshot::DeviceStager stager_;    // touched by start() only while no job is busy, else by the worker
  bool busy_ = false, quit_ = false;
  std::thread thread_;
  // Totals and the part not yet reported in a metrics row.
  int64_t count_ = 0;
  double stall_s_ = 0, copy_s_ = 0, row_stall_s_ = 0, row_copy_s_ = 0, last_bytes_ = 0;
  int64_t row_count_ = 0;
  bool finished_ = false;
};

}  // namespace strata::trainer
