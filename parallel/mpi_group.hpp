// The MPI backend for mpirun launches: parallel::ProcessGroup over MPI communicators directly
// (the torch wheel is built without c10d::ProcessGroupMPI). Operations are MPI-3 non-blocking
// collectives; Work::wait polls MPI_Test until done or until the group's timeout, then raises an
// Error naming the operation, group and rank. All MPI calls are serialized by one mutex
// (MPI_THREAD_SERIALIZED). CPU tensors of float, double, int32, int64, uint8 and int8.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "parallel/process_group.hpp"

namespace strata::parallel {

// Initializes MPI once (idempotent) and returns the world group.
std::shared_ptr<ProcessGroup> mpi_world_group(std::chrono::milliseconds timeout);
// Collective over the world: every rank passes the same partition of [0, world) and gets the
// group (an MPI_Comm_split) that holds it.
std::shared_ptr<ProcessGroup> mpi_split(const std::vector<std::vector<int64_t>>& partition, const std::string& name,
                                        std::chrono::milliseconds timeout);
// Ends MPI: MPI_Finalize after a clean run, MPI_Abort (which stops every rank) after an error.
void mpi_shutdown(bool ok);
bool mpi_initialized();

}  // namespace strata::parallel
