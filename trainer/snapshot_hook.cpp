#include "trainer/snapshot_hook.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "snapshot/dp_shard.hpp"
#include "snapshot/names.hpp"
#include "snapshot/smp.hpp"
#include "snapshot/spawn.hpp"

namespace strata::trainer {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

int64_t all_min(parallel::ProcessGroup& g, int64_t v) {
  at::Tensor t = at::full({1}, v, at::kLong);
  g.all_reduce(t, parallel::ReduceOp::Min)->wait();
  return t.item<int64_t>();
}

int64_t disk_step(const std::optional<fs::path>& dir) {
  if (!dir) return -1;
  return std::stoll(dir->filename().string().substr(5));  // latest_checkpoint returns step_<N> directories
}

double secs_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

SnapshotHook::SnapshotHook(const snapshot::SnapshotConfig& cfg, const std::string& run_dir,
                           const checkpoint::CheckpointConfig& ckpt, int64_t final_step, const parallel::Runtime& runtime,
                           std::shared_ptr<parallel::ProcessGroup> dp, const snapshot::RankLayout& layout,
                           bool resume)
    : cfg_(cfg), layout_(layout), world_(runtime.world_group()), dp_(std::move(dp)) {
  const auto& w = runtime.world();
  const int64_t rpn = snapshot::resolve_ranks_per_node(cfg_, w.local_size);
  if (w.size % rpn != 0)
    fail("snapshot: {} ranks do not split into nodes of snapshot.ranks_per_node = {} ranks", w.size, rpn);
  rank_ = w.rank, node_ = w.rank / rpn, local_ = w.rank % rpn, nodes_ = w.size / rpn;
  if (cfg_.ec_k > 0 && nodes_ % (cfg_.ec_k + cfg_.ec_m) != 0)
    fail("snapshot: erasure coding RS(ec_k = {}, ec_m = {}) groups k + m = {} nodes, but the job has {} snapshot nodes of {} "
         "ranks (set snapshot.ranks_per_node or STRATA_SNAPSHOT_RANKS_PER_NODE)",
         cfg_.ec_k, cfg_.ec_m, cfg_.ec_k + cfg_.ec_m, nodes_, rpn);
  const std::string name = snapshot::resolve_smp_name(cfg_, run_dir);
  const auto peers = snapshot::smp_endpoints(cfg_, nodes_);
  smp_ = peers[node_];
  if (local_ == 0) {
    const fs::path persist = fs::absolute(fs::path(run_dir) / "checkpoints");
    std::vector<std::string> args = {"smp", "--name", name, "--node", std::to_string(node_), "--nodes", std::to_string(nodes_),
                                     "--local-ranks", std::to_string(rpn), "--ec-k", std::to_string(cfg_.ec_k), "--ec-m",
                                     std::to_string(cfg_.ec_m), "--port", std::to_string(cfg_.port), "--keep",
                                     std::to_string(ckpt.keep), "--skip-every", std::to_string(ckpt.every), "--skip-step",
                                     std::to_string(final_step), "--idle-exit-s", std::to_string(cfg_.smp_idle_exit_s)};
    if (!cfg_.hosts.empty()) args.insert(args.end(), {"--hosts", cfg_.hosts});
    if (cfg_.persist_every > 0 && layout_.per_rank())
      spdlog::warn("snapshot: snapshot.persist_every = {} is ignored under this layout: each rank snapshots its own state "
                   "({}), so rank 0's snapshot is not the whole state; the SMP persists nothing and disk checkpoints come "
                   "from checkpoint.every",
                   cfg_.persist_every, layout_.tag());
    if (cfg_.persist_every > 0 && !layout_.per_rank())
      args.insert(args.end(), {"--persist-dir", persist.string(), "--persist-every-steps",
                               std::to_string(cfg_.persist_every * cfg_.every_steps)});
    const std::string log = fs::absolute(fs::path(run_dir) / fmt::format("smp-n{}.log", node_)).string();
    if (snapshot::ensure_smp(snapshot::lock_path(name, node_), args, log))
      spdlog::info("snapshot: started the SMP of node {} (log {})", node_, log);
  }
  snapshot::wait_for_smp(smp_, 60);
  slots_ = snapshot::ShmSlots::open(snapshot::rank_segment(name, node_, local_), true);
  if (!resume) slots_->drop_after(-1);
  if (dp_ && dp_->size() > 1) {  // the world rank of each dp index, for the shares' headers
    at::Tensor all = at::empty({dp_->size()}, at::kLong);
    dp_->all_gather_flat(all, at::full({1}, rank_, at::kLong))->wait();
    dp_ranks_.assign(all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + all.numel());
    shard_ = cfg_.ec_k > 0 && cfg_.shard_dp && layout_.dp_replicated();
  }
  thread_ = std::thread([this] { worker(); });
  spdlog::info("snapshot: every {} steps into shared memory of {} node(s) of {} ranks, {}{}{}", cfg_.every_steps, nodes_,
               rpn, layout_.per_rank() ? "each rank its own local state" : "the whole state",
               cfg_.ec_k > 0 ? fmt::format(", erasure-coded RS({}, {}) by the SMPs", cfg_.ec_k, cfg_.ec_m) : std::string(),
               shard_ ? fmt::format("; each of the {} dp ranks stores a 1/{} share", dp_->size(), dp_->size()) : std::string());
}

SnapshotHook::~SnapshotHook() {
  {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !busy_; });
    quit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SnapshotHook::worker() {
  for (;;) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return quit_ || job_.has_value(); });
    if (quit_) return;
    auto job = std::move(*job_);
    const auto known_crc = job_crc_;
    const bool shard = shard_, staged = job_staged_;
    job_.reset();
    lk.unlock();
    const auto t0 = Clock::now();
    std::string error;
    uint64_t stored = job.bytes();
    try {
      if (staged) stager_.wait();  // the device-to-host copies of this job
      if (shard) {
        const int64_t index = dp_->rank();
        stored = snapshot::shard_size(job.bytes(), static_cast<int64_t>(dp_ranks_.size()), index);
        snapshot::write_shard(job, known_crc ? *known_crc : job.crc(), dp_ranks_, index, slots_->begin_write(stored));
      } else {
        job.write(slots_->begin_write(stored));
      }
      slots_->commit(job.step());
    } catch (const std::exception& e) {
      error = e.what();
    }
    const double dt = secs_since(t0);
    lk.lock();
    if (!error.empty()) spdlog::error("snapshot of step {} failed: {}", job.step(), error);
    copy_s_ += dt, row_copy_s_ += dt, ++count_, ++row_count_;
    last_bytes_ = static_cast<double>(stored);
    busy_ = false;
    cv_.notify_all();
  }
}

void SnapshotHook::start(const checkpoint::CheckpointState& captured) {
  checkpoint::CheckpointState st = captured;  // shares the tensors; adds the layout tag
  st.meta[snapshot::kLayoutMeta] = layout_.tag();
  {  // the previous copy reads the pinned buffers the next staging refills
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !busy_; });
  }
  // Device tensors: queued into pinned host buffers on a side stream; the worker waits for them.
  const bool staged = stager_.stage(st);
  snapshot::PreparedState prepared(st);  // CPU, contiguous: the worker only copies bytes
  std::optional<uint32_t> crc;
  if (shard_ && !checked_) {  // once: are the dp replicas' states really identical? (collective over dp)
    checked_ = true;
    if (staged) stager_.wait();
    crc = prepared.crc();
    at::Tensor lo = at::full({1}, static_cast<int64_t>(*crc), at::kLong), hi = lo.clone();
    dp_->all_reduce(lo, parallel::ReduceOp::Min)->wait();
    dp_->all_reduce(hi, parallel::ReduceOp::Max)->wait();
    if (lo.item<int64_t>() != hi.item<int64_t>()) {
      shard_ = false;
      spdlog::warn("snapshot: the {} dp ranks' states differ at step {} (CRC32C {:08x} on rank {}); storing full copies "
                   "instead of 1/{} shares (set snapshot.shard_dp = false to skip this check)",
                   dp_->size(), st.step, *crc, rank_, dp_->size());
    }
  }
  std::unique_lock lk(mu_);
  job_.emplace(std::move(prepared));
  job_crc_ = crc;
  job_staged_ = staged;
  busy_ = true;
  cv_.notify_all();
}

void SnapshotHook::before_update() {
  const auto t0 = Clock::now();
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !busy_; });
  const double dt = secs_since(t0);
  stall_s_ += dt, row_stall_s_ += dt;
}

std::vector<std::pair<std::string, double>> SnapshotHook::take_metrics() {
  std::lock_guard lk(mu_);
  std::vector<std::pair<std::string, double>> out = {{"snapshot_stall_ms", 1e3 * row_stall_s_}};
  if (row_count_ > 0) out.push_back({"snapshot_copy_ms", 1e3 * row_copy_s_ / row_count_});
  row_stall_s_ = row_copy_s_ = 0;
  row_count_ = 0;
  return out;
}

void SnapshotHook::finish() {
  before_update();
  if (finished_) return;
  finished_ = true;
  std::lock_guard lk(mu_);
  spdlog::info("snapshot: {} snapshots of {:.2f} MB ({} bytes) per rank, background copy {:.2f} ms each, training stalled "
               "{:.3f} s in total waiting for them",
               count_, last_bytes_ / 1e6, static_cast<int64_t>(last_bytes_), count_ ? 1e3 * copy_s_ / count_ : 0.0, stall_s_);
}

std::optional<std::vector<uint8_t>> SnapshotHook::complete_over_dp(std::optional<std::vector<uint8_t>> raw, int64_t step) {
  const auto where = fmt::format("of step {} on rank {}", step, rank_);
  const bool mine_shard = raw && snapshot::is_shard(raw->data(), raw->size());
  if (!dp_ || dp_->size() == 1) {
    if (!mine_shard) return raw;
    try {
      return snapshot::assemble_shards({*raw}, where);
    } catch (const std::exception& e) {
      spdlog::warn("snapshot: {}", e.what());
      return std::nullopt;
    }
  }
  // Every member's (has bytes, is a share, size), so the group takes one decision.
  const int64_t D = dp_->size();
  at::Tensor hdr = at::empty({D * 3}, at::kLong);
  at::Tensor mine = at::tensor({raw ? int64_t{1} : 0, mine_shard ? int64_t{1} : 0, raw ? static_cast<int64_t>(raw->size()) : 0});
  dp_->all_gather_flat(hdr, mine)->wait();
  const auto* h = hdr.data_ptr<int64_t>();
  int64_t have = 0, shares = 0, biggest = 0;
  for (int64_t i = 0; i < D; ++i) have += h[3 * i], shares += h[3 * i + 1], biggest = std::max(biggest, h[3 * i + 2]);
  if (have < D) return std::nullopt;   // a member lacks its snapshot: nobody uses it
  if (shares == 0) return raw;         // full copies
  if (shares < D) {
    spdlog::warn("snapshot: step {} is stored as dp shares on {} of {} dp ranks only; not using it", step, shares, D);
    return std::nullopt;
  }
  at::Tensor out = at::empty({D * biggest}, at::kByte), in = at::zeros({biggest}, at::kByte);
  std::memcpy(in.data_ptr<uint8_t>(), raw->data(), raw->size());
  dp_->all_gather_flat(out, in)->wait();
  std::vector<std::vector<uint8_t>> parts(D);
  for (int64_t i = 0; i < D; ++i) {
    const uint8_t* p = out.data_ptr<uint8_t>() + i * biggest;
    parts[i].assign(p, p + h[3 * i + 2]);
  }
  try {
    return snapshot::assemble_shards(parts, where);
  } catch (const std::exception& e) {
    spdlog::warn("snapshot: {}", e.what());
    return std::nullopt;
  }
}

std::optional<checkpoint::CheckpointState> SnapshotHook::restore(const std::optional<fs::path>& latest_disk) {
  std::set<int64_t> mine;
  for (const auto& c : slots_->committed()) mine.insert(c.step);
  std::set<int64_t> staged;
  bool rebuilt = false;
  if (cfg_.ec_k > 0) {  // the SMP's erasure-coded versions (and a rebuilt node's data)
    const auto end = Clock::now() + std::chrono::seconds(300);
    for (;;) {
      auto r = snapshot::call(smp_, {snapshot::kSteps, 0, 0, 0}, {}, 10);
      if (r && r->status == 0) {
        for (size_t i = 0; i + 8 <= r->payload.size(); i += 8) {
          int64_t v;
          std::memcpy(&v, r->payload.data() + i, 8);
          staged.insert(v);
        }
        rebuilt = r->value == 1;
        break;
      }
      if (Clock::now() > end) fail("snapshot: the SMP of node {} did not finish rebuilding within 300 s", node_);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::set<int64_t> all(mine);
  all.insert(staged.begin(), staged.end());
  // The largest step every rank holds: c = min over ranks of each one's largest step <= bound.
  int64_t bound = INT64_MAX, chosen = -1;
  for (int it = 0; it < 16; ++it) {
    auto pos = all.upper_bound(bound);
    const int64_t c = all_min(*world_, pos == all.begin() ? -1 : *std::prev(pos));
    if (c < 0) break;
    if (all_min(*world_, all.count(c) ? 1 : 0) == 1) {
      chosen = c;
      break;
    }
    bound = c - 1;
  }
  const int64_t disk = disk_step(latest_disk);
  std::optional<checkpoint::CheckpointState> st;
  bool from_staging = false;
  if (chosen > disk) {
    std::optional<std::vector<uint8_t>> raw;
    try {
      if (auto snap = mine.count(chosen) ? slots_->read(chosen) : std::nullopt) {
        raw = std::move(snap->second);
      } else if (staged.count(chosen)) {
        auto r = snapshot::call(smp_, {snapshot::kGetRank, static_cast<uint32_t>(local_), chosen, 0});
        if (r && r->status == 0) raw = std::move(r->payload), from_staging = true;
      }
    } catch (const std::exception& e) {
      spdlog::warn("snapshot: rank {} cannot read its snapshot of step {}: {}", rank_, chosen, e.what());
      raw.reset();
    }
    raw = complete_over_dp(std::move(raw), chosen);  // collective over dp
    try {
      if (raw) st = snapshot::deserialize_state(raw->data(), raw->size(), fmt::format("rank {} step {}", rank_, chosen));
      if (st) {
        const auto why = snapshot::layout_mismatch(st->meta, layout_, fmt::format("of step {} on rank {}", chosen, rank_));
        if (!why.empty()) {
          spdlog::warn("snapshot: {} (a snapshot restores only under the layout that took it; the run falls back to "
                       "the disk checkpoint if there is one)", why);
          st.reset();
        }
      }
    } catch (const std::exception& e) {
      spdlog::warn("snapshot: rank {} cannot load its snapshot of step {}: {}", rank_, chosen, e.what());
      st.reset();
    }
    if (all_min(*world_, st ? 1 : 0) == 0) st.reset();  // everyone or no one
  }
  if (st) {
    if (from_staging || rebuilt)
      spdlog::warn("snapshot: rank {} restores step {} from its SMP's erasure-coded copy{}", rank_, chosen,
                   rebuilt ? " (this node's data was rebuilt from the other nodes)" : "");
    spdlog::info("snapshot: resuming from the in-memory snapshot of step {} (newest disk checkpoint: {})", chosen,
                 latest_disk ? fmt::format("step {}", disk) : std::string("none"));
  } else if (latest_disk && chosen >= 0 && chosen <= disk) {
    spdlog::info("snapshot: the disk checkpoint of step {} is as new as the newest common snapshot (step {}); loading it", disk,
                 chosen);
  } else if (latest_disk) {
    spdlog::warn("snapshot: no usable snapshot newer than step {} is held by every rank (newest common: {}); falling back "
                 "to the disk checkpoint {}", disk, chosen, latest_disk->string());
  } else {
    spdlog::warn("snapshot: no snapshot held by every rank and no disk checkpoint; starting from step 0");
  }
  slots_->drop_after(st ? chosen : std::max<int64_t>(disk, -1));  // newer slots belong to the abandoned timeline
  return st;
}

}  // namespace strata::trainer
