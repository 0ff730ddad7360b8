// Data parallelism: gradients are averaged over the dp group in buckets while backward runs.
//
// Parameters are packed into buckets of about bucket_mb megabytes in reverse registration order
// (the order backward produces their gradients). A post-accumulate-grad hook on each parameter
// copies its finished gradient into the bucket's flat buffer; when a bucket is full its collective
// starts asynchronously (all-reduce, or reduce-scatter under ZeRO-1), strictly in bucket order so
// that every rank issues the same sequence. On non-final micro-batches of an accumulation
// (set_sync(false)) the hooks do nothing: no communication. finish() starts what is left
// (parameters without a gradient count as zero) and waits for every bucket.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "parallel/process_group.hpp"

namespace strata::parallel {

struct DataParallelOptions {
  double bucket_mb = 25.0;
  bool shard_grads = false;  // ZeRO-1: reduce-scatter into per-rank shards instead of all-reduce
  bool overlap = true;       // false: start every bucket in finish() (for benchmarks)
};

struct GradBucket {
  std::vector<size_t> params;    // indices into DataParallel::params()
  std::vector<int64_t> offsets;  // element offset of each parameter in `flat`
  int64_t numel = 0;             // sum of the parameters' sizes
  int64_t padded = 0;            // numel rounded up to a multiple of the dp size
  at::Tensor flat;               // [padded] gradient buffer
  at::Tensor shard;              // [padded / dp] this rank's reduced chunk (shard_grads only)
};

struct DataParallelStats {
  int64_t steps = 0;
  double bytes_per_step = 0;      // payload handed to collectives per step (one rank)
  double wire_bytes_per_step = 0;  // what a ring algorithm sends per rank for that payload
  double wait_s = 0;              // time spent in finish() waiting for communication
};

class DataParallel {
 public:
  DataParallel(std::vector<std::pair<std::string, at::Tensor>> params, std::shared_ptr<ProcessGroup> dp,
               DataParallelOptions opts = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Before each micro-batch's backward: false on non-final micro-batches of an accumulation (the
  // hooks leave gradients local), true on the final one (its backward starts the reductions).
  void set_sync(bool sync);
  // After the final micro-batch's backward: every bucket reduced, and the hooks idle until the
  // next set_sync(true). All-reduce mode: each p.grad()
  // holds the dp average. shard_grads mode: bucket.shard holds this rank's chunk of the average.
  void finish();

  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }
  const std::vector<GradBucket>& buckets() const { return buckets_; }
  ProcessGroup& group() const { return *group_; }
  std::shared_ptr<ProcessGroup> group_ptr() const { return group_; }
  const DataParallelOptions& options() const { return opts_; }
  const DataParallelStats& stats() const { return stats_; }

  // Whether parameter i had a gradient in the step finish() just reduced (false: the graph did not
  // reach it; its gradient counts as zero in the reduction and optimizers should skip it).
  bool has_grad(size_t i) const { return has_grad_[i] != 0; }

  // Called by the autograd hook once parameter i's gradient is accumulated.
  void on_grad_ready(size_t i);

 private:
  void launch_ready();
  void launch(size_t b);

  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::shared_ptr<ProcessGroup> group_;
  DataParallelOptions opts_;
  std::vector<GradBucket> buckets_;
  std::vector<size_t> bucket_of_, slot_of_;  // per parameter
  std::vector<int64_t> pending_;             // per bucket: parameters still to arrive
  std::vector<char> seen_;                   // per parameter, this step
  std::vector<char> has_grad_;               // per parameter, this step
  std::vector<std::shared_ptr<Work>> works_;
  size_t next_launch_ = 0;
  bool sync_ = false, armed_ = false;
  DataParallelStats stats_;
};

}  // namespace strata::parallel
