// Per-step safety decisions that every rank must take together: a non-finite loss or gradient
// norm (skip the step, roll back to the last checkpoint and skip the batch, or stop), and a
// preemption request (SIGTERM or SIGUSR1: finish the step, checkpoint, exit 0). One small
// all-reduce (Max) over the world per step carries both flags, so a fault seen on one rank is acted
// on by all. Test hooks: STRATA_FAULT_NAN_AT="<step>[:<rank>]" makes that rank's loss NaN at that
// (1-indexed) step; STRATA_FAULT_SIGTERM_AT="<step>[:<rank>]" raises SIGTERM in that rank after it.
#pragma once
#include <cstdint>
#include <set>
#include <string>

#include <c10/core/Device.h>

#include "parallel/process_group.hpp"

namespace strata::trainer {

struct StepVerdict {
  bool nonfinite = false;  // some rank saw a non-finite loss or gradient norm at this step
  bool preempt = false;    // some rank received SIGTERM/SIGUSR1
};

class StepGuard {
 public:
  // policy: train.on_nonfinite (skip | rollback | fail); limit: train.nonfinite_limit, the number of
  // non-finite steps in a row after which the run stops anyway. world: every rank of the job.
  // device: where the world group's tensors live (CUDA for NCCL).
  StepGuard(std::string policy, int64_t limit, parallel::ProcessGroup* world, int64_t world_rank, at::Device device);

  // Installs the SIGTERM/SIGUSR1 handlers and clears the flag; the handlers only set the flag.
  static void install_signal_handlers();
  static bool signal_received();
  static int last_signal();

  // The test hook: whether this rank's loss at 1-indexed step `done` is to be made NaN.
  bool inject_nan(int64_t done) const;
  // After the step's loss and gradient norm are known (before the optimizer step): the verdict all
  // ranks agree on. Raises SIGTERM here after step `done` when the STRATA_FAULT_SIGTERM_AT hook says so.
  StepVerdict check(int64_t done, double loss, double grad_norm);

  // After a preemption checkpoint at `step`: writes the file named by STRATA_PREEMPT_MARKER (if set),
  // which tells a batch script (scripts/slurm/strata.sbatch) to requeue the job.
  static void mark_preempted(int64_t step);

  // Bookkeeping for a non-finite step: returns what to do ("skip", "rollback" or fails with a
  // message naming the step, the values and the recipe key when the policy is fail or the limit is hit).
  std::string on_nonfinite(int64_t done, double loss, double grad_norm);
  void on_good_step() { in_a_row_ = 0; }

  // Steps whose batch is skipped without being computed (rollback): recorded in checkpoint meta
  // ("nonfinite.skipped" = "7,12") so a resumed run skips them too.
  const std::set<int64_t>& skipped() const { return skipped_; }
  bool is_skipped(int64_t done) const { return skipped_.count(done) > 0; }
  void add_skipped(int64_t done) { skipped_.insert(done); }
  std::string skipped_meta() const;
  void load_skipped_meta(const std::string& s);

 private:
  std::string policy_;
  int64_t limit_;
  parallel::ProcessGroup* world_;
  int64_t world_rank_;
  at::Device device_;
  int64_t in_a_row_ = 0;
  std::set<int64_t> skipped_;
  int64_t nan_step_ = -1, nan_rank_ = -1, term_step_ = -1, term_rank_ = -1;
};

}  // namespace strata::trainer
