// The optimizer of one (tp, dp) rank in the in-process tensor-parallel tests: plain, or ZeRO-1 over
// the dp group (several small buckets, so pieces are cut at bucket and rank boundaries), with the
// pieces this rank owns and the local parameter each piece belongs to (for tp gradient sync).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "optim/optimizer.hpp"
#include "optim/zero1.hpp"
#include "parallel/data_parallel.hpp"

namespace strata::testing {

struct TpOptimizer {
  std::unique_ptr<parallel::DataParallel> reducer;  // set under zero1
  std::unique_ptr<optim::Optimizer> opt;
  std::vector<at::Tensor> pieces, owners;  // ZeRO-1 pieces and the parameter each belongs to
};

inline TpOptimizer make_tp_optimizer(const std::vector<std::pair<std::string, at::Tensor>>& named, const optim::OptimConfig& oc,
                                     std::shared_ptr<parallel::ProcessGroup> dpg, int64_t dp, bool zero1) {
  TpOptimizer out;
  auto groups = optim::make_param_groups(named, oc.weight_decay);
  if (!zero1) {
    if (dp != 1) fail("test: dp = {} needs zero1 here", dp);
    out.opt = optim::make_optimizer(oc, groups);
    return out;
  }
  parallel::DataParallelOptions dpo;
  dpo.shard_grads = true;
  dpo.bucket_mb = 0.02;
  out.reducer = std::make_unique<parallel::DataParallel>(named, dpg, dpo);
  auto z = std::make_unique<optim::Zero1>(*out.reducer, groups, [oc](std::vector<optim::ParamGroup> g) {
    return optim::make_optimizer(oc, std::move(g));
  });
  out.pieces = z->shard_params();
  for (size_t i = 0; i < out.pieces.size(); ++i) out.owners.push_back(named.at(z->piece_param(i)).second);
  out.opt = std::move(z);
  return out;
}

}  // namespace strata::testing
