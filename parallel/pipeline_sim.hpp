// A discrete-event simulator for pipeline schedules (no tensors, no communication): each rank
// runs its ops in order; a compute op takes its cost; a batch of consecutive communication ops is
// posted at once and completes when its messages are matched (by tag) on the peers. It reports
// the makespan and the bubble, and detects deadlock: a state where some rank waits on a message
// its peer will never post before waiting on this rank.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "parallel/pipeline_schedule.hpp"

namespace strata::parallel {

struct PipeSimCosts {
  // Time of one micro-batch's forward / backward through a whole rank's layers. With v chunks per
  // rank each chunk op costs t_f / v and t_b / v.
  double t_f = 1.0;
  double t_b = 2.0;
  double t_comm = 0.0;  // latency of one communication batch
  // false: a send completes when posted (buffered/eager, like Gloo for small messages).
  // true: a send also waits until the receiver has posted the matching receive (the strict
  // assumption; a schedule that runs under it runs under both).
  bool rendezvous = false;
};

struct PipeSimResult {
  bool deadlock = false;
  std::string deadlock_report;  // what each stuck rank waits for
  double makespan = 0;
  double ideal = 0;                // m * (t_f + t_b): one rank's compute with no bubble
  std::vector<double> busy;        // compute time per rank
  std::vector<double> finish;      // time each rank ran its last op
  double bubble_over_ideal() const { return (makespan - ideal) / ideal; }  // (p-1)/(v*m) in theory
  double bubble_of_wall() const { return (makespan - ideal) / makespan; }  // (p-1)/(v*m+p-1)
};

PipeSimResult simulate_schedule(const PipeSchedule& s, const PipeSimCosts& costs = {});

}  // namespace strata::parallel
