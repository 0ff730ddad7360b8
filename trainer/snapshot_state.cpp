// In-memory snapshots of this rank's OWN state under tensor parallelism, pipeline parallelism or
// ZeRO-1 (issue 13; trainer/snapshot_hook.hpp stores it): instead of gathering the tp = 1 state to
// rank 0 (collectives every snapshot), each rank captures
//   model.<name>   its local parameters (its tp shard of its pipeline stage's chunks, padding rows too),
//   optim.<key>    its optimizer state as the optimizer holds it (ZeRO-1: the inner optimizer's pieces),
//   rng.tp_dropout.* / rng.cpu.pp*   its per-layout RNG streams (Trainer::rng_streams),
//   and the run state of add_run_state (counters, rng.cpu, rng.hessian, two-stage, sparsity, meta).
// No collective runs here. Restoring loads exactly these tensors back into the same rank of the same
// layout; the snapshot's layout tag (snapshot/layout_tag.hpp) is checked by SnapshotHook::restore.
#include <ATen/ATen.h>
#include <ATen/core/Generator.h>
#include <spdlog/spdlog.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "optim/zero1.hpp"
#include "trainer/trainer.hpp"

namespace strata::trainer {

snapshot::RankLayout Trainer::snapshot_layout() const {
  snapshot::RankLayout l;
  l.tp = mesh_->tp()->size(), l.pp = mesh_->pp()->size(), l.dp = mesh_->dp()->size();
  l.tp_rank = mesh_->tp()->rank(), l.pp_rank = mesh_->pp()->rank(), l.dp_rank = mesh_->dp()->rank();
  l.zero1 = sliced_optimizer();
  return l;
}

checkpoint::CheckpointState Trainer::capture_local_state(int64_t step) {
  checkpoint::CheckpointState st;
  for (const auto& [name, p] : params_) st.tensors["model." + name] = p.detach();
  const auto opt_state = sliced_optimizer() ? dynamic_cast<optim::Zero1&>(*opt_).inner().state() : opt_->state();
  for (const auto& [key, t] : opt_state) st.tensors["optim." + key] = t;
  for (const auto& [key, t] : rng_streams()) st.tensors[key] = t;
  add_run_state(step, st);
  return st;
}

void Trainer::restore_local_state(const checkpoint::CheckpointState& st, const std::string& where) {
  checkpoint::CheckpointState run;  // everything but the optimizer and the per-layout streams
  run.step = st.step;
  run.config_yaml = st.config_yaml;
  run.meta = st.meta;
  std::map<std::string, at::Tensor> opt_state;
  for (const auto& [key, t] : st.tensors) {
    if (key.rfind("optim.", 0) == 0) opt_state[key.substr(6)] = t.to(device_);
    else if (key.rfind("rng.tp_dropout.", 0) != 0 && key.rfind("rng.cpu.pp", 0) != 0) run.tensors[key] = t;
  }
  restore_state(run, where, /*load_optimizer=*/false, /*local_model=*/true);  // parameters (checked shapes), run state
  for (const auto& [key, _] : rng_streams()) {  // after rng.cpu: a stage's own CPU stream wins
    auto it = st.tensors.find(key);
    if (it == st.tensors.end())
      fail("{} has no RNG stream '{}' (rank {}); it was taken under another layout", where, key, runtime_->world().rank);
    if (key.rfind("rng.tp_dropout.", 0) == 0) {
      tp_->plan().ctx->rng->set_state(it->second);
    } else {
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      gen.set_state(it->second);
    }
  }
  if (sliced_optimizer()) dynamic_cast<optim::Zero1&>(*opt_).inner().load_state(opt_state);
  else opt_->load_state(opt_state);
  spdlog::info("restored rank {}'s own state ({} tensors, {}) from the {}", runtime_->world().rank, st.tensors.size(),
               snapshot_layout().tag(), where);
}

}  // namespace strata::trainer
