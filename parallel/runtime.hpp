// The distributed runtime of one process: the World read from the launcher, the rendezvous store,
// the backend, and the process groups built from them.
//
//   backend auto: mpi under mpirun, nccl when training on CUDA, else gloo.
//   gloo / nccl: c10d backends over a c10d::TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 serves it,
//     or, under torchrun's agent store, every rank is a client under /worker/attempt_<restart>).
//   mpi: MPI communicators (mpi_group.hpp); no store.
// A world of one uses one-rank groups for everything and needs no store.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "parallel/process_group.hpp"
#include "parallel/world.hpp"

namespace strata::parallel {

struct RuntimeOptions {
  std::string backend = "auto";  // auto | gloo | nccl | mpi
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
  bool cuda = false;  // tensors live on CUDA (picks nccl under auto)
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  // Rendezvous with the other ranks; rank 0 logs the resolved world.
  static std::shared_ptr<Runtime> init(const World& world, const RuntimeOptions& opts);

  const World& world() const { return world_; }
  const std::string& backend() const { return backend_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  std::shared_ptr<ProcessGroup> world_group() const { return world_group_; }
  // Collective over the world: every rank passes the same partition of [0, world size) into
  // groups, and gets the group that holds it. `name` prefixes the group names ("dp", "tp", ...).
  virtual std::shared_ptr<ProcessGroup> split(const std::vector<std::vector<int64_t>>& partition,
                                              const std::string& name) = 0;
  // Call once at the end: ok = false stops the other ranks promptly where the backend can (MPI_Abort).
  virtual void shutdown(bool ok) {}

 protected:
  World world_;
  std::string backend_;
  std::chrono::milliseconds timeout_{0};
  std::shared_ptr<ProcessGroup> world_group_;
};

// Ends the process's distributed runtime at exit: after an error (ok = false) under mpirun this
// aborts the job so no rank waits for this one; after success it finalizes MPI. A no-op otherwise.
void shutdown_runtime(bool ok);

// Which partition entry holds `rank`, and checks that `partition` covers [0, world) exactly once.
size_t group_index_of(const std::vector<std::vector<int64_t>>& partition, int64_t world_size, int64_t rank,
                      const std::string& name);

}  // namespace strata::parallel
