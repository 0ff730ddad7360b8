// Device-to-host staging for snapshots on an accelerator (CUDA): a state's device tensors are copied
// into pinned host buffers on a side stream of their device, so the training stream is not blocked by
// the copy. The side stream first waits for the work queued so far on the current stream (the optimizer
// step that produced the weights); the buffers are reused from one snapshot to the next (by name, while
// shape and dtype stay the same). CPU tensors pass through untouched (the CPU path copies them straight
// from the live tensors on the background thread). Device-generic (c10 guard interface): no CUDA headers,
// so a CPU-only LibTorch builds it too.
// Not thread-safe: the snapshot hook calls stage() only once the previous job's wait() has returned.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>

#include "checkpoint/checkpoint.hpp"

namespace strata::snapshot {

class DeviceStager {
 public:
  // Replaces each non-CPU tensor of `st` by a pinned host buffer that its device's side stream is
  // filling. Returns true if copies were queued: wait() must return before the buffers are read.
  bool stage(checkpoint::CheckpointState& st);
  // Blocks until the copies queued by the last stage() are complete, then drops the references that kept
  // their sources alive. A no-op when nothing is in flight.
  void wait();
  // Host bytes held in reusable pinned buffers.
  int64_t pinned_bytes() const;

 private:
  struct Side {
    c10::Stream stream;
    std::vector<c10::Event> done;  // recorded on `stream` after its copies
  };
  std::map<std::string, at::Tensor> pinned_;
  std::vector<std::pair<c10::Device, Side>> sides_;  // one side stream per device, created on first use
  std::vector<at::Tensor> sources_;                  // the device tensors being read, alive until wait()
  Side& side_of(c10::Device d);
};

}  // namespace strata::snapshot
