// Asynchronous checkpoint saving (recipe checkpoint.async): submit() copies the state into a
// staging buffer on the CPU (reused from save to save while the shapes stay the same, so its size is
// bounded by one state) and returns; a background thread writes and commits it. At most one save is
// in flight: submit() first waits for the previous one. A background failure surfaces, naming the
// step, at the next submit() or wait(); the destructor waits too (and logs a failure it cannot throw).
#pragma once
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/sliced.hpp"

namespace strata::checkpoint {

class AsyncSaver {
 public:
  using Write = std::function<void(const CheckpointState&, const std::vector<OwnedSlice>&)>;
  AsyncSaver() = default;
  AsyncSaver(const AsyncSaver&) = delete;
  AsyncSaver& operator=(const AsyncSaver&) = delete;
  ~AsyncSaver();

  // Returns once the state is staged; `write` then runs on the background thread with the staged copy.
  void submit(const CheckpointState& state, const std::vector<OwnedSlice>& slices, Write write);
  // Blocks until the save in flight (if any) is committed; rethrows its error.
  void wait();
  bool in_flight() const { return worker_.joinable(); }
  uint64_t staging_bytes() const;  // bytes held by the staging buffer

 private:
  std::thread worker_;
  std::exception_ptr error_;
  int64_t step_ = -1;  // of the save in flight
  CheckpointState staged_;
  std::vector<OwnedSlice> staged_slices_;
};

}  // namespace strata::checkpoint
