// The trainer's side of disk checkpoints: save (synchronous or asynchronous) and restore.
//   one process / plain dp: rank 0 writes whole tensors (format version 1);
//   tp, pp or ZeRO-1: every rank writes its own slices in the sliced format (version 2): its tp part
//   of each parameter of its pipeline stage and of the matching optimizer state (ZeRO-1: each dp
//   rank its flat pieces), each element written by exactly one rank, under the (1, 1, 1) names and
//   global shapes (trainer/checkpoint_slices.hpp); world rank 0 adds counters, RNG and meta; under pp
//   each stage adds its sparsity masks (full tp = 1 matrices) whole.
// Restoring under tp, pp or ZeRO-1 reads only the slices overlapping what this rank holds, from a
// checkpoint of any layout; otherwise the whole checkpoint is loaded.
#include <chrono>
#include <string_view>
#include <filesystem>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/autograd.h>

#include "checkpoint/sliced.hpp"
#include "core/error.hpp"
#include "optim/zero1.hpp"
#include "trainer/checkpoint_slices.hpp"
#include "trainer/pipeline_stage.hpp"
#include "trainer/trainer.hpp"

namespace strata::trainer {
namespace fs = std::filesystem;
namespace {

// Where this dp rank's ZeRO-1 piece of each parameter lies: the layout optim::Zero1 builds from the
// reducer's buckets (chunk r of every bucket padded to a multiple of dp).
struct PieceLoc {
  size_t param;
  int64_t at_param, numel;
};

// In the order of Zero1::shard_params().
std::vector<PieceLoc> zero1_piece_order(const parallel::DataParallel& dp) {
  std::vector<PieceLoc> out;
  const int64_t n = dp.group().size(), r = dp.group().rank();
  for (const auto& bk : dp.buckets()) {
    const int64_t chunk = bk.padded / n, lo = r * chunk, hi = lo + chunk;
    for (size_t s = 0; s < bk.params.size(); ++s) {
      const int64_t numel = dp.params()[bk.params[s]].second.numel();
      const int64_t a = std::max(lo, bk.offsets[s]), e = std::min(hi, bk.offsets[s] + numel);
      if (a < e) out.push_back({bk.params[s], a - bk.offsets[s], e - a});
    }
  }
  return out;
}

std::map<std::string, PieceLoc> zero1_pieces(const parallel::DataParallel& dp) {
  std::map<std::string, PieceLoc> out;
  for (const auto& pc : zero1_piece_order(dp)) out[dp.params()[pc.param].first] = pc;
  return out;
}

}  // namespace

void Trainer::sync_zero1_pieces() {
  // Zero1's inner optimizer updates its own copies of this rank's elements ("pieces") and gathers
  // them into the parameters; after parameters are loaded the pieces must be loaded too.
  if (auto* zero = dynamic_cast<optim::Zero1*>(opt_.get())) zero->sync_pieces();
}

bool Trainer::sliced_optimizer() const {
  return cfg_.parallel.zero1 && dp_ && dynamic_cast<optim::Zero1*>(opt_.get()) != nullptr;
}

bool Trainer::per_rank_checkpoints() const { return tp_ || pipe_ || sliced_optimizer(); }

namespace {

// This rank's placement of each held parameter (tp = 1 names). `pp_rank`: the tied embedding held by
// both pipeline ends is written by pp rank 0 only.
std::map<std::string, LocalPlacement> placements(const NamedTensors& params, const TensorParallelSetup* tp,
                                                 const std::vector<std::string>& tied, int64_t pp_rank) {
  std::map<std::string, LocalPlacement> out;
  for (const auto& [name, p] : params) {
    auto pl = placement_of(p.sizes().vec(), tp ? tp->layout(name) : nullptr, tp ? tp->tp_rank() : 0);
    if (tp && !tp->layout(name) && tp->tp_rank() != 0) pl.writer = false;  // replicated over tp
    if (pp_rank != 0 && std::find(tied.begin(), tied.end(), name) != tied.end()) pl.writer = false;
    out.emplace(name, std::move(pl));
  }
  return out;
}

}  // namespace

std::map<std::string, LocalPlacement> Trainer::param_placements() const {
  const std::vector<std::string> tied = pipe_ ? pipeline_tied_params(*model_, mesh_->pp()->size()) : std::vector<std::string>{};
  return placements(params_, tp_.get(), tied, mesh_->pp()->rank());
}

std::map<std::string, at::Tensor> Trainer::rng_streams() const {
  // Per-rank generator streams (exact resume with dropout under the same layout): each (pp, tp)
  // coordinate's tp-region dropout stream, and under pp each stage's default CPU generator (stages
  // draw different amounts from it). The keys name the layout: another layout has other streams.
  std::map<std::string, at::Tensor> out;
  const int64_t t = mesh_->tp()->size(), p = mesh_->pp()->size(), s = mesh_->pp()->rank();
  if (tp_ && tp_->plan().ctx->rng)
    out[fmt::format("rng.tp_dropout.tp{}pp{}.{}.{}", t, p, s, tp_->tp_rank())] = tp_->plan().ctx->rng->state();
  if (pipe_)  // equal on the tp ranks of a stage (they draw the same masks outside regions)
    out[fmt::format("rng.cpu.pp{}.{}", p, s)] = at::detail::getDefaultCPUGenerator().get_state();
  return out;
}

void Trainer::restore_rng_streams(const checkpoint::CheckpointReader& r, const std::string& dir) {
  std::vector<std::string> missing;
  const auto streams = rng_streams();
  for (const auto& [key, _] : streams) {
    if (!r.has(key)) {
      missing.push_back(key);
      continue;
    }
    const auto state = r.read_full(key);
    if (key.rfind("rng.tp_dropout.", 0) == 0) {
      tp_->plan().ctx->rng->set_state(state);
    } else {
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      gen.set_state(state);
    }
  }
  if (!missing.empty() && cfg_.model.dropout > 0)
    spdlog::warn("checkpoint '{}' has no dropout generator stream {} for this layout (saved under another (tp, pp) layout "
                 "or by an older version): dropout continues from fresh streams, so the run is not bitwise the one that "
                 "saved it (rank {})",
                 dir, missing.front(), runtime_->world().rank);
}

void Trainer::capture_sliced(int64_t step, checkpoint::CheckpointState& st, std::vector<checkpoint::OwnedSlice>& slices) {
  // Every rank: its own parts of model.* (dp rank 0 of each (tp, pp) coordinate) and optim.* (ZeRO-1:
  // every dp rank its pieces; otherwise dp rank 0), each written once: a range several ranks hold
  // goes to the first of them. World rank 0 adds the rest (counters, RNG, meta) whole.
  const auto place = param_placements();
  const bool dp0 = mesh_->dp()->rank() == 0;
  for (const auto& [name, p] : params_) {
    const auto& pl = place.at(name);
    if (dp0 && pl.writer) add_local_slices(slices, "model." + name, pl, p);
  }
  if (dp0)  // dp replicas draw alike: one copy per (tp, pp) coordinate; a stage's CPU stream from tp rank 0
    for (const auto& [key, t] : rng_streams())
      if (key.rfind("rng.cpu.pp", 0) != 0 || mesh_->tp()->rank() == 0)
        slices.push_back({key, t.sizes().vec(), checkpoint::Region::whole(t.sizes().vec()), t});
  // Sparsity masks under pp: world rank 0 saves its stage's with the run state (add_run_state); every
  // other stage's (tp = 1) masks come whole from its (dp, tp) = (0, 0) rank, so the checkpoint holds
  // every matrix's mask under its pp = 1 name and resumes under any (tp, pp).
  if (pipe_ && sparsifier_ && !is_main() && dp0 && mesh_->tp()->rank() == 0)
    for (const auto& [key, t] : sparsifier_->state())
      if (key.rfind("sparsity.mask.", 0) == 0)
        slices.push_back({key, t.sizes().vec(), checkpoint::Region::whole(t.sizes().vec()), t});
  std::map<std::string, at::Tensor> counters;  // non-per-parameter entries: equal on every rank
  if (sliced_optimizer()) {
    auto& zero = dynamic_cast<optim::Zero1&>(*opt_);
    const auto pieces = zero1_pieces(*dp_);
    for (const auto& [key, t] : zero.inner().state()) {
      auto [kind, name] = optim::split_state_key(key, pieces);
      if (name.empty()) {
        counters[key] = t;
        continue;
      }
      const auto& pc = pieces.at(name);
      if (t.numel() != pc.numel)
        fail("checkpoint: ZeRO-1 state '{}' on dp rank {} has {} elements, but the rank's piece of '{}' has {}", key,
             dp_->group().rank(), t.numel(), name, pc.numel);
      const auto& pl = place.at(name);
      if (pl.writer) add_local_range_slices(slices, "optim." + key, pl, pc.at_param, t.reshape({-1}));
    }
  } else {
    for (const auto& [key, t] : opt_->state()) {
      auto [kind, name] = optim::split_state_key(key, place);
      if (name.empty()) {
        counters[key] = t;
        continue;
      }
      const auto& pl = place.at(name);
      if (dp0 && pl.writer) add_local_slices(slices, "optim." + key, pl, t);
    }
  }
  st = checkpoint::CheckpointState{};
  if (!is_main()) {
    st.step = step;
    return;
  }
  for (const auto& [key, t] : counters) st.tensors["optim." + key] = t;
  add_run_state(step, st);
}

void Trainer::save(int64_t step) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path root = fs::path(cfg_.run.dir) / "checkpoints";
  const bool sliced = per_rank_checkpoints();
  checkpoint::CheckpointState st;
  std::vector<checkpoint::OwnedSlice> slices;
  checkpoint::SliceSaveOptions so;
  if (sliced) {
    capture_sliced(step, st, slices);
    so.rank = runtime_->world().rank;
    so.world = runtime_->world().size;
    so.wait = std::chrono::seconds(std::max<int64_t>(600, cfg_.parallel.timeout_s));
    if (save_nonce_.empty()) {  // one value per launch, from rank 0, names the shared temporary directory
      at::Tensor v = at::full({1}, std::chrono::system_clock::now().time_since_epoch().count() / 1000,
                              at::TensorOptions().dtype(at::kLong).device(device_));
      runtime_->world_group()->broadcast(v, 0)->wait();
      save_nonce_ = std::to_string(v.cpu().item<int64_t>());
    }
    so.nonce = fmt::format("{}-{}", save_nonce_, ++save_count_);
  } else {
    st = capture_state(step);  // one process, or plain dp: rank 0 holds everything
    if (!is_main()) return;
  }
  const bool main = is_main();
  const auto keep = cfg_.checkpoint.keep, keep_every = cfg_.checkpoint.keep_every;
  const std::string how = !sliced ? std::string()
                          : tp_ || pipe_ ? " (sliced: every tp/pp rank wrote its own model and optimizer slices)"
                                         : " (sliced: every dp rank wrote its optimizer shard)";
  auto write = [root, sliced, so, main, keep, keep_every, step, how](const checkpoint::CheckpointState& s,
                                                                const std::vector<checkpoint::OwnedSlice>& sl) {
    fs::path dir;
    try {
      dir = sliced ? checkpoint::save_sliced(root, s, sl, so) : checkpoint::save_checkpoint(root, s);
    } catch (const std::exception& e) {  // disk full, unwritable: nothing partial was published
      auto prev = checkpoint::latest_checkpoint(root);
      fail("checkpoint at step {} could not be written under '{}': {}; {}", step, root.string(), e.what(),
           prev ? fmt::format("the previous checkpoint '{}' is intact and `--resume` continues from it", prev->string())
                : std::string("there is no earlier checkpoint"));
    }
    if (!main) return;
    checkpoint::apply_retention(root, keep, keep_every);
    spdlog::info("checkpoint: wrote {}{}", dir.string(), how);
  };
  if (cfg_.checkpoint.async) {
    if (!saver_) saver_ = std::make_unique<checkpoint::AsyncSaver>();
    saver_->submit(st, slices, write);  // waits for the previous save, stages CPU copies, returns
  } else {
    write(st, slices);
  }
  const double blocked = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ckpt_blocked_s_ += blocked;
  ++ckpt_saves_;
  spdlog::debug("checkpoint: step {} blocked training for {:.4f} s ({})", step, blocked, cfg_.checkpoint.async ? "async" : "sync");
}

void Trainer::wait_for_saves() {
  if (!saver_) return;
  const auto t0 = std::chrono::steady_clock::now();
  saver_->wait();  // a background failure surfaces here, naming its step
  ckpt_final_wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Sliced saves: rank 0 publishes; the others must not look for the checkpoint before it has.
  if (per_rank_checkpoints() && runtime_->world().size > 1) runtime_->world_group()->barrier();
}

void Trainer::restore(const std::string& dir) {
  if (!tp_ && !pipe_ && !sliced_optimizer()) {
    restore_state(checkpoint::load_checkpoint(dir), dir);
    spdlog::info("resumed from {} at step {}", dir, start_step_);
    return;
  }
  // Per rank, from a checkpoint of any layout (per-rank slices, or whole tensors from a gathered or
  // one-process save): this rank's tp part of each parameter it holds (its pipeline stage's), the
  // same part of their optimizer state (under ZeRO-1 only this dp rank's flat range of it), and the
  // rest whole. Only the slices overlapping those parts are read, each checked against its CRC32C.
  checkpoint::CheckpointReader r(dir);
  const auto place = param_placements();
  std::map<std::string, bool> saved_params;  // every parameter name of the checkpoint: held here or not
  for (const auto& [name, _] : r.tensors())
    if (name.rfind("model.", 0) == 0) saved_params[name.substr(6)] = place.count(name.substr(6)) > 0;
  auto* zero = sliced_optimizer() ? &dynamic_cast<optim::Zero1&>(*opt_) : nullptr;
  const auto pieces = zero ? zero1_pieces(*dp_) : std::map<std::string, PieceLoc>{};
  checkpoint::CheckpointState st;
  st.step = r.step();
  st.config_yaml = r.config_yaml();
  st.meta = r.meta();
  std::map<std::string, at::Tensor> mine;
  const uint64_t before = r.bytes_read();
  for (const auto& [name, info] : r.tensors()) {
    if (name.rfind("model.", 0) == 0) continue;  // below, for the held parameters only
    if (name.rfind("rng.tp_dropout.", 0) == 0 || name.rfind("rng.cpu.pp", 0) == 0) continue;  // restore_rng_streams
    constexpr std::string_view kMask = "sparsity.mask.";
    if (name.rfind(kMask, 0) == 0 && !(sparsifier_ && sparsifier_->holds(name.substr(kMask.size()))))
      continue;  // another pipeline stage's matrix
    if (name.rfind("optim.", 0) != 0) {
      st.tensors[name] = r.read_full(name);
      continue;
    }
    const std::string key = name.substr(6);
    auto [kind, pname] = optim::split_state_key(key, saved_params);
    if (pname.empty()) {
      mine[key] = r.read_full(name).to(device_);
      continue;
    }
    if (!saved_params.at(pname)) continue;  // another pipeline stage's
    const auto& pl = place.at(pname);
    if (!zero) {
      mine[key] = read_local(r, name, pl).to(device_);
      continue;
    }
    auto it = pieces.find(pname);
    if (it == pieces.end()) continue;  // other dp ranks' elements
    mine[key] = read_local_range(r, name, pl, it->second.at_param, it->second.numel).to(device_);
  }
  for (const auto& [name, p] : params_) {
    if (!r.has("model." + name)) fail("checkpoint '{}' has no tensor 'model.{}'", dir, name);
    st.tensors["model." + name] = read_local(r, "model." + name, place.at(name));
  }
  restore_state(st, dir, /*load_optimizer=*/false, /*local_model=*/true);
  restore_rng_streams(r, dir);
  if (!mine.empty() || !st.meta.count("growth.operator")) {  // `strata grow` checkpoints: fresh moments
    if (zero) zero->inner().load_state(mine);
    else opt_->load_state(mine);
  }
  spdlog::info("resumed from {} at step {} (world rank {}{}: read {:.3f} MB of {} slices)", dir, start_step_,
               runtime_->world().rank, zero ? fmt::format(", ZeRO-1 dp rank {}", dp_->group().rank()) : std::string(),
               (r.bytes_read() - before) / 1e6, r.version() == 2 ? "per-rank" : "whole-tensor");
}

}  // namespace strata::trainer
