#include "parallel/pipeline_schedule.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "core/error.hpp"

namespace strata::parallel {

PipeScheduleKind parse_pipe_schedule(const std::string& name) {
  if (name == "gpipe") return PipeScheduleKind::GPipe;
  if (name == "1f1b") return PipeScheduleKind::OneFOneB;
  if (name == "interleaved" || name == "interleaved_1f1b") return PipeScheduleKind::Interleaved;
  fail("parallel.schedule: unknown schedule '{}' (expected gpipe, 1f1b or interleaved)", name);
}

std::string to_string(PipeScheduleKind k) {
  switch (k) {
    case PipeScheduleKind::GPipe: return "gpipe";
    case PipeScheduleKind::OneFOneB: return "1f1b";
    case PipeScheduleKind::Interleaved: return "interleaved";
  }
  return "?";
}

namespace {

PipeOp fwd(int64_t mb, int64_t chunk) { return {PipeOpKind::Forward, mb, chunk}; }
PipeOp bwd(int64_t mb, int64_t chunk) { return {PipeOpKind::Backward, mb, chunk}; }

// Megatron's interleaved 1F1B: virtual step k of rank r maps to (micro-batch, local chunk). Forward
// steps walk p micro-batches through chunk 0, then the same p through chunk 1, ...; backward steps
// walk the chunks in reverse.
std::pair<int64_t, int64_t> interleaved_step(int64_t k, int64_t p, int64_t v, bool forward) {
  const int64_t in_group = k % (p * v);
  int64_t local_chunk = in_group / p;
  if (!forward) local_chunk = v - 1 - local_chunk;
  const int64_t mb = (k / (p * v)) * p + k % p;
  return {mb, local_chunk};
}

int64_t interleaved_warmup(int64_t p, int64_t m, int64_t v, int64_t r) {
  return std::min((p - r - 1) * 2 + (v - 1) * p, m * v);
}

}  // namespace

std::vector<PipeOp> compute_order(PipeScheduleKind kind, int64_t p, int64_t m, int64_t v, int64_t r) {
  std::vector<PipeOp> ops;
  switch (kind) {
    case PipeScheduleKind::GPipe:
      for (int64_t i = 0; i < m; ++i) ops.push_back(fwd(i, r));
      for (int64_t i = 0; i < m; ++i) ops.push_back(bwd(i, r));
      break;
    case PipeScheduleKind::OneFOneB: {
      const int64_t warmup = std::min(p - r - 1, m);
      for (int64_t i = 0; i < warmup; ++i) ops.push_back(fwd(i, r));
      for (int64_t i = 0; i < m - warmup; ++i) {
        ops.push_back(fwd(warmup + i, r));
        ops.push_back(bwd(i, r));
      }
      for (int64_t i = m - warmup; i < m; ++i) ops.push_back(bwd(i, r));
      break;
    }
    case PipeScheduleKind::Interleaved: {
      const int64_t total = m * v;
      const int64_t warmup = interleaved_warmup(p, m, v, r);
      auto f = [&](int64_t k) {
        auto [mb, c] = interleaved_step(k, p, v, true);
        return fwd(mb, c * p + r);
      };
      auto b = [&](int64_t k) {
        auto [mb, c] = interleaved_step(k, p, v, false);
        return bwd(mb, c * p + r);
      };
      for (int64_t k = 0; k < warmup; ++k) ops.push_back(f(k));
      for (int64_t k = warmup; k < total; ++k) {
        ops.push_back(f(k));
        ops.push_back(b(k - warmup));
      }
      for (int64_t k = total - warmup; k < total; ++k) ops.push_back(b(k));
      break;
    }
  }
  return ops;
}

PipeSchedule make_schedule(PipeScheduleKind kind, int64_t p, int64_t m, int64_t v) {
  if (p < 1) fail("pipeline schedule: p = {} stages, need at least 1", p);
  if (m < 1) fail("pipeline schedule: m = {} micro-batches, need at least 1", m);
  if (kind == PipeScheduleKind::Interleaved) {
    if (v < 2) fail("interleaved 1F1B needs parallel.virtual_stages >= 2 chunks per rank, got {}", v);
    if (p < 2) fail("interleaved 1F1B needs parallel.pp >= 2, got {}", p);
    if (m % p != 0)
      fail("interleaved 1F1B needs the micro-batch count (train.grad_accum = {}) to be a multiple of parallel.pp = {}", m, p);
  } else if (v != 1) {
    fail("{} runs one chunk per rank, but parallel.virtual_stages = {} (use parallel.schedule = interleaved)", to_string(kind), v);
  }
  PipeSchedule s{kind, p, m, v, {}};
  const int64_t C = p * v;
  s.ranks.resize(p);
  for (int64_t r = 0; r < p; ++r) {
    auto& out = s.ranks[r];
    const auto order = compute_order(kind, p, m, v, r);
    const int64_t n = static_cast<int64_t>(order.size());
    // slots[i]: the communication batch just before compute op i (slots[n]: after the last one).
    std::vector<std::vector<PipeOp>> recvs(n + 1), sends(n + 1);
    for (int64_t i = 0; i < n; ++i) {
      const PipeOp& op = order[i];
      const int64_t c = op.chunk;
      if (op.kind == PipeOpKind::Forward) {
        if (c > 0) recvs[i].push_back({PipeOpKind::RecvAct, op.mb, c, s.rank_of_chunk(c - 1)});
        if (c < C - 1) sends[i + 1].push_back({PipeOpKind::SendAct, op.mb, c, s.rank_of_chunk(c + 1)});
      } else {
        if (c < C - 1) recvs[i].push_back({PipeOpKind::RecvGrad, op.mb, c, s.rank_of_chunk(c + 1)});
        if (c > 0) sends[i + 1].push_back({PipeOpKind::SendGrad, op.mb, c, s.rank_of_chunk(c - 1)});
      }
    }
    if (kind == PipeScheduleKind::Interleaved) {
      // Megatron's interleaved batching: a steady-state pair F(k) B(j) runs back to back; the batch
      // after it sends both results and receives the inputs of the next pair. Without this, a
      // send that waits for its receive (NCCL, Gloo) can close a cycle between neighbours.
      const int64_t warmup = interleaved_warmup(p, m, v, r);
      for (int64_t i = std::max<int64_t>(warmup, 1); i < 2 * m * v - warmup; i += 2) {  // F at i, B at i + 1
        for (auto& x : sends[i + 1]) sends[i + 2].insert(sends[i + 2].begin(), x);
        for (auto& x : recvs[i + 1]) recvs[i].push_back(x);
        sends[i + 1].clear();
        recvs[i + 1].clear();
      }
    }
    for (int64_t i = 0; i <= n; ++i) {
      for (const auto& x : sends[i]) out.push_back(x);
      for (const auto& x : recvs[i]) out.push_back(x);
      if (i < n) out.push_back(order[i]);
    }
  }
  return s;
}

int64_t message_tag(const PipeSchedule& s, const PipeOp& op) {
  // Edge e is the boundary between chunk e and chunk e + 1; activations cross it forward (dir 0),
  // gradients backward (dir 1).
  int64_t edge = 0, dir = 0;
  switch (op.kind) {
    case PipeOpKind::SendAct: edge = op.chunk, dir = 0; break;
    case PipeOpKind::RecvAct: edge = op.chunk - 1, dir = 0; break;
    case PipeOpKind::SendGrad: edge = op.chunk - 1, dir = 1; break;
    case PipeOpKind::RecvGrad: edge = op.chunk, dir = 1; break;
    default: fail("message_tag: {} is not a communication op", to_string(op));
  }
  return (edge * 2 + dir) * s.m + op.mb;
}

std::string check_schedule(const PipeSchedule& s) {
  const int64_t C = s.num_chunks();
  if (static_cast<int64_t>(s.ranks.size()) != s.p) return fmt::format("schedule has {} rank lists for p = {}", s.ranks.size(), s.p);
  // (rank, tag, is_send) -> count, with the peer each names.
  std::map<std::tuple<int64_t, int64_t, bool>, std::pair<int, int64_t>> msgs;
  for (int64_t r = 0; r < s.p; ++r) {
    std::map<std::pair<int64_t, int64_t>, int> fwd_done, bwd_done;
    for (const PipeOp& op : s.ranks[r]) {
      if (op.mb < 0 || op.mb >= s.m || op.chunk < 0 || op.chunk >= C)
        return fmt::format("rank {}: {} is outside m = {}, chunks = {}", r, to_string(op), s.m, C);
      if (s.rank_of_chunk(op.chunk) != r) return fmt::format("rank {}: {} names a chunk held by rank {}", r, to_string(op), s.rank_of_chunk(op.chunk));
      const auto key = std::make_pair(op.mb, op.chunk);
      if (op.kind == PipeOpKind::Forward) {
        if (fwd_done[key]++) return fmt::format("rank {}: {} runs twice", r, to_string(op));
      } else if (op.kind == PipeOpKind::Backward) {
        if (!fwd_done.count(key)) return fmt::format("rank {}: {} runs before its forward", r, to_string(op));
        if (bwd_done[key]++) return fmt::format("rank {}: {} runs twice", r, to_string(op));
      } else {
        const bool send = op.kind == PipeOpKind::SendAct || op.kind == PipeOpKind::SendGrad;
        const bool needs_fwd = op.kind == PipeOpKind::SendAct, needs_bwd = op.kind == PipeOpKind::SendGrad;
        if (needs_fwd && !fwd_done.count(key)) return fmt::format("rank {}: {} before the forward that makes it", r, to_string(op));
        if (needs_bwd && !bwd_done.count(key)) return fmt::format("rank {}: {} before the backward that makes it", r, to_string(op));
        const int64_t neighbour = (op.kind == PipeOpKind::SendAct || op.kind == PipeOpKind::RecvGrad) ? op.chunk + 1 : op.chunk - 1;
        if (neighbour < 0 || neighbour >= C) return fmt::format("rank {}: {} crosses the pipeline's end", r, to_string(op));
        if (op.peer != s.rank_of_chunk(neighbour))
          return fmt::format("rank {}: {} names peer {} but chunk {} is on rank {}", r, to_string(op), op.peer, neighbour, s.rank_of_chunk(neighbour));
        auto& e = msgs[{r, message_tag(s, op), send}];
        e.first++;
        e.second = op.peer;
      }
    }
    for (int64_t c = r; c < C; c += s.p)
      for (int64_t mb = 0; mb < s.m; ++mb) {
        if (fwd_done[{mb, c}] != 1) return fmt::format("rank {}: forward of micro-batch {} on chunk {} runs {} times", r, mb, c, fwd_done[{mb, c}]);
        if (bwd_done[{mb, c}] != 1) return fmt::format("rank {}: backward of micro-batch {} on chunk {} runs {} times", r, mb, c, bwd_done[{mb, c}]);
      }
  }
  for (const auto& [key, e] : msgs) {
    const auto& [r, tag, send] = key;
    if (e.first != 1) return fmt::format("rank {}: message tag {} {} {} times", r, tag, send ? "sent" : "received", e.first);
    auto it = msgs.find({e.second, tag, !send});
    if (it == msgs.end() || it->second.second != r)
      return fmt::format("rank {}: message tag {} {} rank {} has no matching {} there", r, tag, send ? "to" : "from", e.second,
                         send ? "receive" : "send");
  }
  return {};
}

int64_t peak_live_activations(const PipeSchedule& s, int64_t r) {
  int64_t live = 0, peak = 0;
  for (const PipeOp& op : s.ranks.at(r)) {
    if (op.kind == PipeOpKind::Forward) peak = std::max(peak, ++live);
    if (op.kind == PipeOpKind::Backward) --live;
  }
  return peak;
}

std::string to_string(const PipeOp& op) {
  switch (op.kind) {
    case PipeOpKind::Forward: return fmt::format("F{}.{}", op.mb, op.chunk);
    case PipeOpKind::Backward: return fmt::format("B{}.{}", op.mb, op.chunk);
    case PipeOpKind::SendAct: return fmt::format("sA{}.{}>{}", op.mb, op.chunk, op.peer);
    case PipeOpKind::RecvAct: return fmt::format("rA{}.{}<{}", op.mb, op.chunk, op.peer);
    case PipeOpKind::SendGrad: return fmt::format("sG{}.{}>{}", op.mb, op.chunk, op.peer);
    case PipeOpKind::RecvGrad: return fmt::format("rG{}.{}<{}", op.mb, op.chunk, op.peer);
  }
  return "?";
}

std::string format_schedule(const PipeSchedule& s) {
  std::string out = fmt::format("schedule {}: p = {}, m = {}, v = {} (F<mb>.<chunk> forward, B backward, "
                                "[sA/rA send/recv activation, sG/rG gradient, >peer <peer] one batch)\n",
                                to_string(s.kind), s.p, s.m, s.v);
  for (int64_t r = 0; r < s.p; ++r) {
    out += fmt::format("rank {}:", r);
    bool in_batch = false;
    for (const PipeOp& op : s.ranks[r]) {
      if (op.is_compute()) {
        if (in_batch) out += "]";
        in_batch = false;
        out += " " + to_string(op);
      } else {
        out += in_batch ? " " : " [";
        in_batch = true;
        out += to_string(op);
      }
    }
    if (in_batch) out += "]";
    out += "\n";
  }
  return out;
}

}  // namespace strata::parallel
