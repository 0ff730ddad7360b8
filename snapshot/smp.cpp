#include "snapshot/smp.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "checkpoint/checkpoint.hpp"
#include "core/error.hpp"
#include "snapshot/dp_shard.hpp"
#include "snapshot/ec_layout.hpp"
#include "snapshot/names.hpp"
#include "snapshot/serialize.hpp"
#include "snapshot/slots.hpp"

namespace strata::snapshot {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

using Bytes = std::shared_ptr<const std::vector<uint8_t>>;

struct Staged {
  int64_t v = -1;
  uint64_t S = 0;   // padded size once encoded
  Bytes data;       // the packed node snapshot (unpadded)
  Bytes parity;     // m * S / k bytes once encoded
};

Reply status(int32_t s, const std::string& msg = {}) {
  Reply r;
  r.status = s;
  r.payload.assign(msg.begin(), msg.end());
  return r;
}

class Smp {
 public:
  explicit Smp(const SmpOptions& o) : o_(o) {
    if (o_.ec_k > 0) {
      layout_ = {static_cast<int>(o_.ec_k), static_cast<int>(o_.ec_m)};
      rs_.emplace(layout_.k, layout_.m);
      if (o_.nodes % layout_.n() != 0)
        fail("smp: {} nodes cannot form groups of ec_k + ec_m = {} nodes (snapshot.ec_k / ec_m)", o_.nodes, layout_.n());
      group_first_ = o_.node - o_.node % layout_.n();
    }
    for (int64_t r = 0; r < o_.local_ranks; ++r) slots_.emplace_back();
  }

  Reply handle(const Request& q, const std::vector<uint8_t>&) {
    switch (q.op) {
      case kPing: return value(o_.node);
      case kNewest: return value(newest_local());
      case kStage: return stage(q.v);
      case kEncode: return encode(q.v, q.b);
      case kCommit: return commit(q.v);
      case kGetData: return get_block(q.v, q.b, static_cast<int>(q.a), false);
      case kGetParity: return get_block(q.v, q.b, static_cast<int>(q.a), true);
      case kCommitted: {
        std::lock_guard lk(mu_);
        Reply r = value(committed_.v);
        r.payload.resize(8);
        std::memcpy(r.payload.data(), &committed_.S, 8);
        return r;
      }
      case kSteps: {
        if (!ready_) return status(2, "rebuilding");
        std::lock_guard lk(mu_);
        Reply r = value(rebuilt_ ? 1 : 0);
        for (const Staged* s : {&committed_, &working_})
          if (s->data) {
            r.payload.resize(r.payload.size() + 8);
            std::memcpy(r.payload.data() + r.payload.size() - 8, &s->v, 8);
          }
        return r;
      }
      case kGetRank: {
        Bytes d = staged_data(q.v);
        if (!d) return status(1, fmt::format("version {} is not staged", q.v));
        auto ranks = unpack_node(d->data(), d->size(), fmt::format("node {} staging", o_.node));
        if (q.a >= ranks.size()) return status(1, "no such local rank");
        Reply r;
        r.payload = std::move(ranks[q.a]);
        return r;
      }
      case kGetSlot: {
        std::optional<std::pair<int64_t, std::vector<uint8_t>>> snap;
        {
          std::lock_guard lk(slots_mu_);
          if (q.a < slots_.size() && open_rank(q.a)) snap = slots_[q.a]->read(q.v);
        }
        if (!snap) return status(1, fmt::format("local rank {} holds no committed step {}", q.a, q.v));
        Reply r;
        r.payload = std::move(snap->second);
        return r;
      }
      default: return status(1, fmt::format("unknown op {}", q.op));
    }
  }

  void rebuild_if_lost() {
    if (!rs_ || newest_local() >= 0) return;
    std::vector<std::pair<int64_t, uint64_t>> cands;
    for (int i = 0; i < layout_.n(); ++i) {
      const int64_t peer = group_first_ + i;
      if (peer == o_.node) continue;
      auto r = call(o_.peers[peer], {kCommitted, 0, 0, 0}, {}, 5);
      if (!r || r->status != 0 || r->value < 0 || r->payload.size() != 8) continue;
      uint64_t S = 0;
      std::memcpy(&S, r->payload.data(), 8);
      cands.push_back({r->value, S});
    }
    std::sort(cands.rbegin(), cands.rend());
    cands.erase(std::unique(cands.begin(), cands.end()), cands.end());
    if (cands.empty()) return;  // a fresh job: nothing to rebuild
    for (auto [v, S] : cands) {
      const auto t0 = Clock::now();
      try {
        const int me = static_cast<int>(o_.node - group_first_);
        auto data = rebuild_node_data(layout_, *rs_, S, me, fetcher(v, S, false, nullptr), fetcher(v, S, true, nullptr));
        auto ranks = unpack_node(data.data(), data.size(), fmt::format("node {} rebuilt at step {}", o_.node, v));
        if (static_cast<int64_t>(ranks.size()) != o_.local_ranks)
          fail("rebuilt node {} holds {} ranks, this SMP serves {}", o_.node, ranks.size(), o_.local_ranks);
        {
          std::lock_guard lk(slots_mu_);
          for (int64_t r = 0; r < o_.local_ranks; ++r) {
            auto s = ShmSlots::open(rank_segment(o_.name, o_.node, r), true);
            std::memcpy(s->begin_write(ranks[r].size()), ranks[r].data(), ranks[r].size());
            s->commit(v);
            slots_[r] = std::move(s);
          }
        }
        auto packed = std::make_shared<const std::vector<uint8_t>>(pack_node(ranks));
        std::vector<uint8_t> parity(layout_.m * (S / layout_.k));
        encode_node_parity(layout_, *rs_, S, me, fetcher(v, S, false, packed), parity.data());
        {
          std::lock_guard lk(mu_);
          committed_ = {v, S, packed, std::make_shared<const std::vector<uint8_t>>(std::move(parity))};
          rebuilt_ = true;
        }
        spdlog::info("smp node {}: rebuilt {} ranks ({:.2f} MB) at step {} by erasure coding RS({}, {}) from the other nodes in {:.3f} s",
                     o_.node, ranks.size(), packed->size() / 1e6, v, layout_.k, layout_.m,
                     std::chrono::duration<double>(Clock::now() - t0).count());
        return;
      } catch (const std::exception& e) {
        spdlog::warn("smp node {}: rebuilding step {} failed: {}", o_.node, v, e.what());
      }
    }
    spdlog::error("smp node {}: lost snapshot is unrecoverable (more than ec_m = {} nodes of its group lost); the "
                  "trainers will fall back to the disk checkpoint", o_.node, layout_.m);
  }

  void ec_round() {
    for (int64_t i = group_first_; i < o_.node; ++i)  // the lowest live node of the group leads
      if (auto r = call(o_.peers[i], {kPing, 0, 0, 0}, {}, 1); r && r->status == 0) return;
    const int64_t n = layout_.n();
    int64_t v = INT64_MAX;
    for (int64_t i = 0; i < n; ++i) {
      auto r = call(o_.peers[group_first_ + i], {kNewest, 0, 0, 0}, {}, 5);
      if (!r || r->status != 0 || r->value < 0) return;
      v = std::min(v, r->value);
    }
    {
      std::lock_guard lk(mu_);
      if (v <= committed_.v) return;
    }
    const auto t0 = Clock::now();
    uint64_t max_bytes = 0;
    for (int64_t i = 0; i < n; ++i) {
      auto r = call(o_.peers[group_first_ + i], {kStage, 0, v, 0});
      if (!r || r->status != 0) return;  // a trainer moved past v meanwhile: next round
      max_bytes = std::max<uint64_t>(max_bytes, r->value);
    }
    const uint64_t S = layout_.padded_size(max_bytes);
    for (int64_t i = 0; i < n; ++i)
      if (auto r = call(o_.peers[group_first_ + i], {kEncode, 0, v, S}); !r || r->status != 0) return;
    for (int64_t i = 0; i < n; ++i) {
      call(o_.peers[group_first_ + i], {kCommit, 0, v, 0});
      if (die_round_ == rounds_ + 1 && i + 1 == (n + 1) / 2) {  // test fault: the leader dies between COMMITs
        spdlog::warn("smp node {}: test fault (STRATA_TEST_SMP_DIE_MID_COMMIT): exiting after committing step {} on "
                     "nodes {}..{} of {}..{}", o_.node, v, group_first_, group_first_ + i, group_first_, group_first_ + n - 1);
        spdlog::default_logger()->flush();
        std::_Exit(9);
      }
    }
    ++rounds_;
    spdlog::debug("smp node {}: step {} erasure-coded over nodes {}..{} in {:.3f} s", o_.node, v, group_first_,
                  group_first_ + n - 1, std::chrono::duration<double>(Clock::now() - t0).count());
  }

  void persist_once(int64_t& last) {
    std::optional<std::pair<int64_t, std::vector<uint8_t>>> snap;
    {
      std::lock_guard lk(slots_mu_);
      if (!open_rank(0)) return;
      for (const auto& c : slots_[0]->committed()) {  // newest first; either slot may hold a multiple of P
        const bool trainer_writes = (o_.skip_every > 0 && c.step % o_.skip_every == 0) || c.step == o_.skip_step;
        if (c.step > last && c.step % o_.persist_every_steps == 0 && !trainer_writes) {
          snap = slots_[0]->read(c.step);
          break;
        }
      }
    }
    if (!snap) return;
    last = snap->first;
    const fs::path root = o_.persist_dir;
    if (fs::exists(root / fmt::format("step_{}", snap->first))) return;  // the trainer wrote it
    const auto t0 = Clock::now();
    if (is_shard(snap->second.data(), snap->second.size())) snap->second = gather_rank0_shares(snap->first, snap->second);
    auto st = deserialize_state(snap->second.data(), snap->second.size(), "rank 0 slot");
    auto dir = checkpoint::save_checkpoint(root, st);
    checkpoint::apply_retention(root, o_.keep, 0);
    spdlog::info("smp node {}: persisted snapshot step {} to {} in {:.3f} s", o_.node, snap->first, dir.string(),
                 std::chrono::duration<double>(Clock::now() - t0).count());
  }

  // Rank 0's slot holds one dp share: fetch the others from the slots of the ranks its header names
  // (they keep the two newest steps, so this runs right after the step is committed).
  std::vector<uint8_t> gather_rank0_shares(int64_t step, std::vector<uint8_t> own) {
    const auto info = read_shard(own.data(), own.size(), fmt::format("rank 0 slot of step {}", step));
    std::vector<std::vector<uint8_t>> shares;
    for (int32_t i = 0; i < info.parts; ++i) {
      if (i == info.index) continue;
      const int64_t w = info.group[i], node = w / o_.local_ranks;
      const uint32_t local = static_cast<uint32_t>(w % o_.local_ranks);
      if (node < 0 || node >= o_.nodes) fail("share {} of step {} names rank {}, outside the job", i, step, w);
      auto r = call(o_.peers[node], {kGetSlot, local, step, 0}, {}, 30);
      if (!r || r->status != 0)
        fail("cannot fetch dp share {} of step {} from rank {} (node {}): {}", i, step, w, node,
             r ? std::string(r->payload.begin(), r->payload.end()) : std::string("no answer"));
      shares.push_back(std::move(r->payload));
    }
    shares.push_back(std::move(own));
    return assemble_shards(shares, fmt::format("step {} for persisting", step));
  }

  int64_t newest_local() {
    std::lock_guard lk(slots_mu_);
    int64_t v = INT64_MAX;
    for (int64_t r = 0; r < o_.local_ranks; ++r) {
      if (!open_rank(r)) return -1;
      auto c = slots_[r]->committed();
      if (c.empty()) return -1;
      v = std::min(v, c[0].step);
    }
    return v;
  }

  void unlink_all() {
    for (int64_t r = 0; r < o_.local_ranks; ++r) ShmSlots::unlink(rank_segment(o_.name, o_.node, r));
  }

  int64_t rounds() const { return rounds_; }
  std::atomic<bool> ready_{false};

 private:
  static Reply value(int64_t v) {
    Reply r;
    r.value = v;
    return r;
  }

  bool open_rank(int64_t r) {  // under slots_mu_
    if (!slots_[r]) slots_[r] = ShmSlots::open(rank_segment(o_.name, o_.node, r), false);
    return slots_[r].has_value();
  }

  Reply stage(int64_t v) {
    std::vector<std::vector<uint8_t>> ranks;
    {
      std::lock_guard lk(slots_mu_);
      for (int64_t r = 0; r < o_.local_ranks; ++r) {
        auto snap = open_rank(r) ? slots_[r]->read(v) : std::nullopt;
        if (!snap) return status(1, fmt::format("local rank {} no longer holds step {}", r, v));
        ranks.push_back(std::move(snap->second));
      }
    }
    auto packed = std::make_shared<const std::vector<uint8_t>>(pack_node(ranks));
    std::lock_guard lk(mu_);
    working_ = {v, 0, packed, nullptr};
    return value(static_cast<int64_t>(packed->size()));
  }

  Reply encode(int64_t v, uint64_t S) {
    Bytes data;
    {
      std::lock_guard lk(mu_);
      if (working_.v != v || !working_.data) return status(1, "version not staged");
      data = working_.data;
    }
    std::vector<uint8_t> parity(layout_.m * (S / layout_.k));
    encode_node_parity(layout_, *rs_, S, static_cast<int>(o_.node - group_first_), fetcher(v, S, false, data), parity.data());
    std::lock_guard lk(mu_);
    if (working_.v != v || working_.data != data) return status(1, "restaged meanwhile");
    working_.S = S;
    working_.parity = std::make_shared<const std::vector<uint8_t>>(std::move(parity));
    return value(0);
  }

  Reply commit(int64_t v) {
    std::lock_guard lk(mu_);
    if (working_.v != v || !working_.parity) return status(1, "version not encoded");
    std::swap(committed_, working_);
    return value(0);
  }

  Bytes staged_data(int64_t v) {
    std::lock_guard lk(mu_);
    for (const Staged* s : {&committed_, &working_})
      if (s->data && s->v == v) return s->data;
    return nullptr;
  }

  Reply get_block(int64_t v, uint64_t S, int idx, bool parity) {
    if (!rs_ || S % layout_.k != 0) return status(1, "no erasure coding");
    const uint64_t B = S / layout_.k;
    std::lock_guard lk(mu_);
    for (const Staged* s : {&committed_, &working_}) {
      if (s->v != v || !s->data) continue;
      Reply r;
      if (parity) {
        if (!s->parity || s->S != S || idx >= layout_.m) continue;
        r.payload.assign(s->parity->begin() + B * idx, s->parity->begin() + B * (idx + 1));
      } else {
        if (s->data->size() > S || idx >= layout_.k) continue;
        r.payload.assign(B, 0);
        const uint64_t off = B * idx;
        if (off < s->data->size()) std::memcpy(r.payload.data(), s->data->data() + off, std::min<uint64_t>(B, s->data->size() - off));
      }
      return r;
    }
    return status(1, fmt::format("version {} is not held", v));
  }

  // Reads blocks of group member `i` at (v, S): own data from `own` when given, others over TCP.
  FetchBlock fetcher(int64_t v, uint64_t S, bool parity, Bytes own) {
    return [this, v, S, parity, own](int i, int block, uint8_t* out) {
      const int64_t node = group_first_ + i;
      const uint64_t B = S / layout_.k;
      if (node == o_.node) {
        if (parity || !own) return false;
        std::memset(out, 0, B);
        const uint64_t off = B * block;
        if (off < own->size()) std::memcpy(out, own->data() + off, std::min<uint64_t>(B, own->size() - off));
        return true;
      }
      auto r = call(o_.peers[node], {parity ? kGetParity : kGetData, static_cast<uint32_t>(block), v, S}, {}, 30);
      if (!r || r->status != 0 || r->payload.size() != B) return false;
      std::memcpy(out, r->payload.data(), B);
      return true;
    };
  }

  SmpOptions o_;
  StripeLayout layout_;
  std::optional<ReedSolomon> rs_;
  int64_t group_first_ = 0;
  std::mutex slots_mu_;
  std::vector<std::optional<ShmSlots>> slots_;
  std::mutex mu_;
  Staged committed_, working_;
  bool rebuilt_ = false;
  int64_t rounds_ = 0;
  // Fault injection for tests: as the leader, exit in this erasure-coding round (1-based) after
  // committing the first half of the group, so the group holds two committed versions.
  int64_t die_round_ = [] {
    const char* e = std::getenv("STRATA_TEST_SMP_DIE_MID_COMMIT");
    return e ? std::atoll(e) : 0;
  }();
};

}  // namespace

int run_smp(const SmpOptions& o) {
  if (o.node < 0 || o.node >= o.nodes) fail("smp: node {} is outside 0..{}", o.node, o.nodes - 1);
  if (static_cast<int64_t>(o.peers.size()) != o.nodes) fail("smp: {} peer endpoints for {} nodes", o.peers.size(), o.nodes);
  const std::string lock = lock_path(o.name, o.node);
  int lfd = ::open(lock.c_str(), O_CREAT | O_RDWR, 0600);
  if (lfd < 0) fail("smp: cannot open lock file {}: {}", lock, std::strerror(errno));
  if (::flock(lfd, LOCK_EX | LOCK_NB) != 0) {
    spdlog::info("smp node {}: already running (lock {} held)", o.node, lock);
    ::close(lfd);
    return 0;
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lfd, 0) != 0 || ::write(lfd, pid.data(), pid.size()) < 0) spdlog::warn("smp: cannot write pid to {}", lock);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  Smp smp(o);
  Server server(static_cast<int>(o.peers[o.node].port), [&](const Request& q, const std::vector<uint8_t>& p) { return smp.handle(q, p); });
  spdlog::info("smp node {} of {} (pid {}): {} local ranks, segments /dev/shm/strata-{}-n{}-r*, port {}, {}", o.node, o.nodes,
               ::getpid(), o.local_ranks, o.name, o.node, o.peers[o.node].port,
               o.ec_k > 0 ? fmt::format("erasure coding RS({}, {})", o.ec_k, o.ec_m) : std::string("no erasure coding"));
  smp.rebuild_if_lost();
  smp.ready_ = true;

  std::thread persist;
  if (!o.persist_dir.empty() && o.persist_every_steps > 0 && o.node == 0) {
    persist = std::thread([&] {
      int64_t last = -1;
      if (auto l = checkpoint::latest_checkpoint(o.persist_dir)) last = std::stoll(l->filename().string().substr(5));
      while (!g_stop) {
        try {
          smp.persist_once(last);
        } catch (const std::exception& e) {
          spdlog::error("smp node {}: persisting failed: {}", o.node, e.what());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  int64_t seen = smp.newest_local();
  auto last_change = Clock::now();
  while (!g_stop) {
    if (o.ec_k > 0) {
      try {
        smp.ec_round();
      } catch (const std::exception& e) {
        spdlog::warn("smp node {}: erasure-coding round failed: {}", o.node, e.what());
      }
    }
    const int64_t now = smp.newest_local();
    if (now != seen) seen = now, last_change = Clock::now();
    if (o.idle_exit_s > 0 && std::chrono::duration<double>(Clock::now() - last_change).count() > o.idle_exit_s) {
      spdlog::info("smp node {}: no new snapshot for {:.0f} s, exiting", o.node, o.idle_exit_s);
      break;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o.poll_s));
  }
  g_stop = true;
  if (persist.joinable()) persist.join();
  smp.unlink_all();
  ::unlink(lock.c_str());
  spdlog::info("smp node {}: stopped after {} erasure-coding rounds; shared memory freed", o.node, smp.rounds());
  return 0;
}

}  // namespace strata::snapshot
