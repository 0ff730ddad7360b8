#include "snapshot/layout_tag.hpp"

#include <fmt/format.h>

namespace strata::snapshot {

std::string RankLayout::tag() const {
  const std::string sizes = fmt::format("tp={} pp={} dp={} zero1={}", tp, pp, dp, zero1 ? "on" : "off");
  if (!per_rank()) return "whole state under " + sizes;
  const std::string dp_coord = dp_replicated() ? std::string("*") : std::to_string(dp_rank);
  return fmt::format("per-rank state of (tp {}, pp {}, dp {}) under {}", tp_rank, pp_rank, dp_coord, sizes);
}

std::string layout_mismatch(const std::map<std::string, std::string>& meta, const RankLayout& here, const std::string& where) {
  const std::string mine = here.tag();
  auto it = meta.find(kLayoutMeta);
  if (it == meta.end()) {
    if (!here.per_rank()) return {};  // an untagged snapshot holds the whole state, as this layout's do
    return fmt::format("the snapshot {} has no layout tag (a whole-state snapshot of an older version) but this run "
                       "snapshots the {}; not loading it",
                       where, mine);
  }
  if (it->second == mine) return {};
  return fmt::format("the snapshot {} holds the {}, but this run has the {}; not loading it", where, it->second, mine);
}

}  // namespace strata::snapshot
