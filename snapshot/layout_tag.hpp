// The layout a snapshot was taken under (spec specs/snapshots.md, section 2.1; issue 13). Under
// tensor parallelism, pipeline parallelism or ZeRO-1 each rank snapshots its OWN local state (its tp
// shard of its pipeline stage, its ZeRO-1 optimizer pieces, its RNG streams), which only the same
// rank of the same layout can load. The tag goes into the snapshot's meta (key kLayoutMeta); a
// restore under another layout is refused with a message naming both layouts, and the run falls
// back to the disk checkpoint. One process and plain dp keep snapshotting the whole state, tagged
// too; a whole-state snapshot without a tag (an older version's) is still accepted there.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace strata::snapshot {

inline constexpr const char* kLayoutMeta = "snapshot.layout";

struct RankLayout {
  int64_t tp = 1, pp = 1, dp = 1;
  bool zero1 = false;
  int64_t tp_rank = 0, pp_rank = 0, dp_rank = 0;
  // Each rank's state is its own (tp, pp or ZeRO-1); otherwise every rank holds the whole state.
  bool per_rank() const { return tp > 1 || pp > 1 || zero1; }
  // Whether the dp replicas of one (tp, pp) coordinate hold identical states (not under ZeRO-1,
  // whose optimizer pieces differ per dp rank): then the dp rank is not part of the tag.
  bool dp_replicated() const { return !zero1; }
  // E.g. "per-rank state of (tp 1, pp 0, dp *) under tp=2 pp=1 dp=2 zero1=off" or
  // "whole state under tp=1 pp=1 dp=4 zero1=off".
  std::string tag() const;
};

// "" when `meta` carries this layout's tag (or, for a whole-state layout, no tag at all); otherwise
// why the snapshot `where` (e.g. "of step 12 on rank 3") cannot be loaded here, naming both layouts.
std::string layout_mismatch(const std::map<std::string, std::string>& meta, const RankLayout& here, const std::string& where);

}  // namespace strata::snapshot
