// Runs one rank's part of a PipeSchedule for one training step: forwards and backwards through
// this rank's chunks, activations and gradients exchanged with the neighbouring pipeline ranks
// through ProcessGroup::send/recv (each batch of consecutive communication ops is posted at once
// and then waited on, as batched c10d isend/irecv), parameter gradients accumulated across
// micro-batches by autograd. The caller zeroes gradients before and steps the optimizer after.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "parallel/pipeline_schedule.hpp"
#include "parallel/process_group.hpp"

namespace strata::parallel {

// What one rank computes; the trainer implements it over the model's layer ranges.
class PipeStage {
 public:
  virtual ~PipeStage() = default;
  // Forward of global chunk `chunk` on micro-batch `mb`. `input` is the activation received from
  // chunk - 1 (undefined on chunk 0, which reads its own micro-batch). Returns the output
  // activation, or on the last chunk the scalar loss whose backward gives this micro-batch's share
  // of the step's gradient (e.g. the mean loss divided by m).
  virtual at::Tensor forward(int64_t chunk, int64_t mb, const at::Tensor& input) = 0;
};

struct PipeStepResult {
  std::vector<at::Tensor> losses;  // per micro-batch (detached), on the rank holding the last chunk
  double wall_seconds = 0;         // the step on this rank
  double compute_seconds = 0;      // forwards and backwards on this rank
};

class PipeRuntime {
 public:
  // group: the pipeline group, whose rank r is pipeline rank r. act_shape/options: every activation
  // crossing a chunk boundary has this shape and dtype (e.g. [micro_batch, seq, d_model]).
  PipeRuntime(PipeSchedule schedule, std::shared_ptr<ProcessGroup> group, std::vector<int64_t> act_shape,
              at::TensorOptions options);
  PipeStepResult run_step(PipeStage& stage);
  const PipeSchedule& schedule() const { return sched_; }
  int64_t rank() const { return rank_; }

 private:
  PipeSchedule sched_;
  std::shared_ptr<ProcessGroup> group_;
  std::vector<int64_t> act_shape_;
  at::TensorOptions options_;
  int64_t rank_;
};

// Sums `tensors` (e.g. the tied embedding's gradient) between the first and the last pipeline rank
// in place, so both copies receive the same update; other ranks and p = 1 do nothing. Every rank
// of the group must call it with the same number of tensors of the same shapes.
void sum_between_pipeline_ends(ProcessGroup& group, std::vector<at::Tensor>& tensors);

// The step's summed loss from the last pipeline rank to every rank (double, on CPU).
double broadcast_from_last(ProcessGroup& group, double value);

}  // namespace strata::parallel
