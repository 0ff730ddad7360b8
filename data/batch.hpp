// Turns global sample indices into input/target tensors [B, T] (targets are inputs shifted by one).
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/dataset.hpp"
#include "data/sampler.hpp"

namespace strata::data {

struct Batch {
  at::Tensor inputs;   // int64 [B, T]
  at::Tensor targets;  // int64 [B, T]
};

class BatchLoader {
 public:
  // shuffle = false reads windows in stream order (used for the fixed validation set).
  BatchLoader(const TokenDataset& ds, int64_t seq_len, uint64_t seed, bool shuffle = true);
  Batch get(const std::vector<uint64_t>& indices) const;
  uint64_t windows() const { return sampler_.windows(); }

 private:
  const TokenDataset& ds_;
  int64_t seq_len_;
  SequenceSampler sampler_;
  bool shuffle_;
};

}  // namespace strata::data
