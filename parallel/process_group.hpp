// The collectives Strata uses, over one group of ranks. Backends (c10d Gloo for CPU tensors, c10d
// NCCL for CUDA tensors, MPI for mpirun launches, and a one-rank group) implement this interface;
// everything above parallel/ talks to it, never to NCCL, Gloo or MPI directly. Operations that a
// backend cannot do fail loudly naming the backend and the operation. Asynchronous operations
// return a Work handle; a wait that exceeds the group's timeout raises an Error naming the
// operation, the group and the rank.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace strata::parallel {

enum class ReduceOp { Sum, Avg, Max, Min };

class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t size() const = 0;
  // A human-readable name for messages, e.g. "dp[0,2,4,6]" or "tp(gloo)".
  virtual std::string name() const = 0;

  // In-place collectives on `t`.
  virtual std::shared_ptr<Work> all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::shared_ptr<Work> broadcast(at::Tensor& t, int64_t root) = 0;
  // out[i] receives rank i's `in`; every out[i] has in's shape.
  virtual std::shared_ptr<Work> all_gather(std::vector<at::Tensor>& out, const at::Tensor& in) = 0;
  // Flat variants: in has size() equal chunks along dim 0 (reduce_scatter) / out does (all_gather).
  virtual std::shared_ptr<Work> all_gather_flat(at::Tensor& out, const at::Tensor& in) = 0;
  virtual std::shared_ptr<Work> reduce_scatter_flat(at::Tensor& out, const at::Tensor& in,
                                                    ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::shared_ptr<Work> send(const at::Tensor& t, int64_t dst, int64_t tag = 0) = 0;
  virtual std::shared_ptr<Work> recv(at::Tensor& t, int64_t src, int64_t tag = 0) = 0;
  virtual void barrier() = 0;

  // Blocking conveniences.
  void all_reduce_sync(at::Tensor& t, ReduceOp op = ReduceOp::Sum) { all_reduce(t, op)->wait(); }
};

// A group of one rank: every collective is the identity (used for single-process runs and for mesh
// axes of size 1).
std::shared_ptr<ProcessGroup> make_single_rank_group(const std::string& name);

}  // namespace strata::parallel
