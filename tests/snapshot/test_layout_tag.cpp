// The layout tag of a snapshot (snapshot/layout_tag.hpp): per-rank states name the rank's (tp, pp)
// coordinate (and its dp rank under ZeRO-1 only); a restore under another layout is refused with a
// message naming both layouts; whole-state layouts accept an untagged (older) snapshot.
#include <catch2/catch.hpp>

#include "snapshot/layout_tag.hpp"

using namespace strata;
using Catch::Matchers::Contains;

namespace {
snapshot::RankLayout make(int64_t tp, int64_t pp, int64_t dp, bool zero1, int64_t t, int64_t p, int64_t d) {
  snapshot::RankLayout l;
  l.tp = tp, l.pp = pp, l.dp = dp, l.zero1 = zero1, l.tp_rank = t, l.pp_rank = p, l.dp_rank = d;
  return l;
}
}  // namespace

TEST_CASE("layout tags name the sizes and this rank's coordinate", "[snapshot][layout]") {
  REQUIRE(make(2, 1, 2, false, 1, 0, 1).tag() == "per-rank state of (tp 1, pp 0, dp *) under tp=2 pp=1 dp=2 zero1=off");
  REQUIRE(make(1, 2, 2, true, 0, 1, 1).tag() == "per-rank state of (tp 0, pp 1, dp 1) under tp=1 pp=2 dp=2 zero1=on");
  REQUIRE(make(1, 1, 4, false, 0, 0, 3).tag() == "whole state under tp=1 pp=1 dp=4 zero1=off");
  // dp replicas of one (tp, pp) coordinate carry the same tag (their states are shared as 1/dp shares)
  REQUIRE(make(2, 2, 2, false, 1, 1, 0).tag() == make(2, 2, 2, false, 1, 1, 1).tag());
  REQUIRE(make(2, 2, 2, true, 1, 1, 0).tag() != make(2, 2, 2, true, 1, 1, 1).tag());
  REQUIRE(make(1, 1, 1, false, 0, 0, 0).per_rank() == false);
  REQUIRE(make(1, 1, 2, true, 0, 0, 0).per_rank() == true);
  REQUIRE(make(1, 1, 2, true, 0, 0, 0).dp_replicated() == false);
  REQUIRE(make(1, 2, 2, false, 0, 0, 0).dp_replicated() == true);
}

TEST_CASE("a snapshot from another layout is refused naming both layouts", "[snapshot][layout]") {
  const auto saved = make(2, 1, 2, false, 1, 0, 0), here_same = make(2, 1, 2, false, 1, 0, 1);
  std::map<std::string, std::string> meta = {{snapshot::kLayoutMeta, saved.tag()}, {"samples_consumed", "64"}};
  REQUIRE(snapshot::layout_mismatch(meta, here_same, "of step 3 on rank 3").empty());
  for (const auto& other : {make(1, 2, 2, false, 0, 0, 1), make(2, 1, 2, false, 0, 0, 0), make(2, 1, 2, true, 1, 0, 0),
                            make(1, 1, 4, false, 0, 0, 1)}) {
    const auto why = snapshot::layout_mismatch(meta, other, "of step 3 on rank 3");
    INFO(why);
    REQUIRE_THAT(why, Contains(saved.tag()) && Contains(other.tag()) && Contains("of step 3 on rank 3"));
  }
  // No tag: an older version's whole-state snapshot, fine where snapshots hold the whole state.
  std::map<std::string, std::string> untagged = {{"samples_consumed", "64"}};
  REQUIRE(snapshot::layout_mismatch(untagged, make(1, 1, 4, false, 0, 0, 2), "x").empty());
  REQUIRE_THAT(snapshot::layout_mismatch(untagged, saved, "x"), Contains("no layout tag") && Contains(saved.tag()));
}
