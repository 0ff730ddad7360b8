// Activation checkpointing per transformer block. LibTorch's C++ API has no
// torch.utils.checkpoint, so this is a custom autograd Function: the forward pass runs the block
// without recording a graph (only the block's input is kept), and the backward pass re-runs the
// block with gradients enabled, restoring the random-number state (dropout draws the same masks)
// and the autocast state of the forward pass, then differentiates the recomputed output.
//
// Model code stays plain math: a block derives from CheckpointableBlock and routes its forward
// through run_block(); the trainer turns the switch on for every block with
// set_activation_checkpointing(model, true).
#pragma once
#include <functional>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace strata::models {

using BlockFn = std::function<at::Tensor(const at::Tensor&)>;

// y = fn(x), keeping only x for the backward pass and recomputing fn there. `params` are the
// tensors fn reads that need gradients (the block's parameters); fn must not read other tensors
// that require gradients. Without grad mode it is a plain call.
at::Tensor checkpoint(const BlockFn& fn, const at::Tensor& x, const std::vector<at::Tensor>& params);

class CheckpointableBlock {
 public:
  virtual ~CheckpointableBlock() = default;
  bool activation_checkpointing = false;

 protected:
  // Calls fn(x), checkpointed when the switch is on. `self` is the block (for its parameters).
  at::Tensor run_block(torch::nn::Module& self, const at::Tensor& x, const BlockFn& fn) const;
};

// Sets the switch on every CheckpointableBlock inside `model`; returns how many blocks it found.
int64_t set_activation_checkpointing(torch::nn::Module& model, bool on);

}  // namespace strata::models
