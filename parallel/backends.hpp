// Internal to parallel/: the c10d backends behind ProcessGroup. Gloo (CPU tensors) and NCCL (CUDA
// tensors) are c10d::Backend objects built from a c10d::Store; wrap_c10d turns one into a
// parallel::ProcessGroup with timeouts and errors that name the operation, group and rank.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "parallel/process_group.hpp"

namespace strata::parallel {

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout);
// Fails when this build has no NCCL (see nccl_available()).
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout, int device_index);
bool nccl_available();

// `world_rank` is this process's rank in the whole job (for messages); `kind` is "gloo" or "nccl".
// `diag_store` (the group's prefixed rendezvous store; may be null) is used only after a collective
// timed out, to find out which ranks of the group reached it (hang_report.hpp).
std::shared_ptr<ProcessGroup> wrap_c10d(c10::intrusive_ptr<c10d::Backend> backend, std::string name, std::string kind,
                                        int64_t world_rank, std::chrono::milliseconds timeout,
                                        c10::intrusive_ptr<c10d::Store> diag_store = {});

}  // namespace strata::parallel
