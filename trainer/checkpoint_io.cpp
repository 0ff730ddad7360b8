// The trainer's side of disk checkpoints: save (synchronous or asynchronous, whole tensors from
// rank 0 or, under ZeRO-1, each dp rank's optimizer shard written by that rank in the sliced format),
// and restore (ZeRO-1 ranks read only the flat ranges of the optimizer state they own).
#include <chrono>
#include <filesystem>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/autograd.h>

#include "checkpoint/sliced.hpp"
#include "core/error.hpp"
#include "optim/zero1.hpp"
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
  return cfg_.parallel.zero1 && dp_ && !tp_ && !pipe_ && dynamic_cast<optim::Zero1*>(opt_.get()) != nullptr;
}

void Trainer::capture_sliced(int64_t step, checkpoint::CheckpointState& st, std::vector<checkpoint::OwnedSlice>& slices) {
  auto& zero = dynamic_cast<optim::Zero1&>(*opt_);
  const auto pieces = zero1_pieces(*dp_);
  std::map<std::string, at::Tensor> counters;  // non-per-parameter entries: equal on every dp rank
  for (const auto& [key, t] : zero.inner().state()) {
    auto [kind, name] = optim::split_state_key(key, pieces);
    if (name.empty()) {
      counters[key] = t;
      continue;
    }
    const auto& pc = pieces.at(name);
    const auto& p = dp_->params()[pc.param].second;
    if (t.numel() != pc.numel)
      fail("checkpoint: ZeRO-1 state '{}' on dp rank {} has {} elements, but the rank's piece of '{}' has {}", key,
           dp_->group().rank(), t.numel(), name, pc.numel);
    slices.push_back({"optim." + key, p.sizes().vec(), checkpoint::Region::range(pc.at_param, pc.numel), t.reshape({-1})});
  }
  st = capture_state(step, counters);  // model, counters, RNG, meta: written by rank 0 only
  if (!is_main()) st.tensors.clear(), st.meta.clear();
}

void Trainer::save(int64_t step) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path root = fs::path(cfg_.run.dir) / "checkpoints";
  const bool sliced = sliced_optimizer();
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
    st = capture_state(step);  // collective under ZeRO-1 / tp / pp
    if (!is_main()) return;
  }
  const bool main = is_main();
  const auto keep = cfg_.checkpoint.keep, keep_every = cfg_.checkpoint.keep_every;
  auto write = [root, sliced, so, main, keep, keep_every, step](const checkpoint::CheckpointState& s,
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
    spdlog::info("checkpoint: wrote {}{}", dir.string(), sliced ? " (sliced: every dp rank wrote its optimizer shard)" : "");
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
  if (sliced_optimizer() && runtime_->world().size > 1) runtime_->world_group()->barrier();
}

void Trainer::restore(const std::string& dir) {
  if (!sliced_optimizer()) {
    restore_state(checkpoint::load_checkpoint(dir), dir);
    spdlog::info("resumed from {} at step {}", dir, start_step_);
    return;
  }
  // ZeRO-1: whole tensors for everything but the optimizer's per-parameter state, of which this dp
  // rank reads only its own flat range, from whichever slices (any dp degree, zero1 on or off) hold it.
  checkpoint::CheckpointReader r(dir);
  auto& zero = dynamic_cast<optim::Zero1&>(*opt_);
  const auto pieces = zero1_pieces(*dp_);
  std::map<std::string, size_t> param_index;
  for (size_t i = 0; i < dp_->params().size(); ++i) param_index[dp_->params()[i].first] = i;
  checkpoint::CheckpointState st;
  st.step = r.step();
  st.config_yaml = r.config_yaml();
  st.meta = r.meta();
  std::map<std::string, at::Tensor> mine;
  const uint64_t before = r.bytes_read();
  for (const auto& [name, info] : r.tensors()) {
    if (name.rfind("optim.", 0) != 0) {
      st.tensors[name] = r.read_full(name);
      continue;
    }
    const std::string key = name.substr(6);
    auto [kind, pname] = optim::split_state_key(key, param_index);
    if (pname.empty()) {
      mine[key] = r.read_full(name).to(device_);
      continue;
    }
    auto it = pieces.find(pname);
    if (it == pieces.end()) continue;  // other dp ranks' elements
    const auto& p = dp_->params()[it->second.param].second;
    if (checkpoint::numel_of(info.shape) != p.numel())
      fail("checkpoint '{}': tensor '{}' has shape {} but parameter '{}' has {} elements", dir, name,
           fmt::join(info.shape, "x"), pname, p.numel());
    mine[key] = r.read(name, checkpoint::Region::range(it->second.at_param, it->second.numel)).to(device_);
  }
  restore_state(st, dir, /*load_optimizer=*/false);
  if (!mine.empty() || !st.meta.count("growth.operator")) zero.inner().load_state(mine);
  spdlog::info("resumed from {} at step {} (ZeRO-1 dp rank {}: read {:.3f} MB of slices)", dir, start_step_,
               dp_->group().rank(), (r.bytes_read() - before) / 1e6);
}

}  // namespace strata::trainer
