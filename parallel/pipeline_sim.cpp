#include "parallel/pipeline_sim.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

namespace strata::parallel {
namespace {

bool is_send(PipeOpKind k) { return k == PipeOpKind::SendAct || k == PipeOpKind::SendGrad; }

// A rank's program: compute ops and communication batches, in order.
struct Step {
  bool compute = false;
  std::vector<PipeOp> ops;  // one compute op, or a batch of communication ops
};

std::vector<Step> steps_of(const std::vector<PipeOp>& ops) {
  std::vector<Step> out;
  for (const PipeOp& op : ops) {
    if (op.is_compute()) {
      out.push_back({true, {op}});
    } else {
      if (out.empty() || out.back().compute) out.push_back({false, {}});
      out.back().ops.push_back(op);
    }
  }
  return out;
}

}  // namespace

PipeSimResult simulate_schedule(const PipeSchedule& s, const PipeSimCosts& costs) {
  const int64_t p = s.p;
  std::vector<std::vector<Step>> prog(p);
  for (int64_t r = 0; r < p; ++r) prog[r] = steps_of(s.ranks[r]);
  std::vector<size_t> pc(p, 0);
  std::vector<double> now(p, 0.0);
  std::vector<bool> posted(p, false);
  // (src, dst, tag) -> time the op was posted, one map for sends and one for receives.
  using Key = std::tuple<int64_t, int64_t, int64_t>;
  std::map<Key, double> sends, recvs;
  PipeSimResult res;
  res.busy.assign(p, 0.0);
  res.finish.assign(p, 0.0);
  const double tf = costs.t_f / s.v, tb = costs.t_b / s.v;

  bool progress = true;
  while (progress) {
    progress = false;
    for (int64_t r = 0; r < p; ++r) {
      while (pc[r] < prog[r].size()) {
        const Step& st = prog[r][pc[r]];
        if (st.compute) {
          const double c = st.ops[0].kind == PipeOpKind::Forward ? tf : tb;
          now[r] += c;
          res.busy[r] += c;
        } else {
          if (!posted[r]) {
            for (const PipeOp& op : st.ops) {
              const int64_t tag = message_tag(s, op);
              if (is_send(op.kind)) sends[{r, op.peer, tag}] = now[r];
              else recvs[{op.peer, r, tag}] = now[r];
            }
            posted[r] = true;
          }
          double done = now[r];
          bool ready = true;
          for (const PipeOp& op : st.ops) {
            const int64_t tag = message_tag(s, op);
            if (is_send(op.kind)) {
              if (!costs.rendezvous) continue;
              auto it = recvs.find({r, op.peer, tag});
              if (it == recvs.end()) { ready = false; break; }
              done = std::max(done, it->second);
            } else {
              auto it = sends.find({op.peer, r, tag});
              if (it == sends.end()) { ready = false; break; }
              done = std::max(done, it->second);
            }
          }
          if (!ready) break;
          now[r] = done + costs.t_comm;
          posted[r] = false;
        }
        ++pc[r];
        progress = true;
      }
    }
  }
  for (int64_t r = 0; r < p; ++r) {
    res.finish[r] = now[r];
    if (pc[r] < prog[r].size()) {
      res.deadlock = true;
      std::string waits;
      for (const PipeOp& op : prog[r][pc[r]].ops) waits += " " + to_string(op);
      res.deadlock_report += fmt::format("rank {} stuck at op batch {} of {}: [{} ]\n", r, pc[r], prog[r].size(), waits);
    }
  }
  res.makespan = *std::max_element(res.finish.begin(), res.finish.end());
  res.ideal = s.m * (costs.t_f + costs.t_b);
  return res;
}

}  // namespace strata::parallel
