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
  // Only with document masking on (data.document_mask), else undefined. doc_ids: int64 [B, T], the
  // document of each input token within its row (0 for the first, +1 after each EOS, the EOS itself
  // still belonging to the document it ends); positions: int64 [B, T], the token's offset inside its
  // document. A model masks attention where doc_ids differ and restarts positions there.
  at::Tensor doc_ids, positions;
  at::Tensor sources;  // int64 [B]: the mixture dataset each row came from (all 0 for one dataset)
};

// Fills b.doc_ids and b.positions from b.inputs.
void add_document_ids(Batch& b, int32_t eos);

class BatchLoader {
 public:
  // shuffle = false reads windows in stream order (used for the fixed validation set).
  BatchLoader(const TokenDataset& ds, int64_t seq_len, uint64_t seed, bool shuffle = true);
  Batch get(const std::vector<uint64_t>& indices) const;
  // Writes the T + 1 tokens of sample `index` to row.
  void fill(uint64_t index, int64_t* row) const;
  uint64_t windows() const { return sampler_.windows(); }

 private:
  const TokenDataset& ds_;
  int64_t seq_len_;
  SequenceSampler sampler_;
  bool shuffle_;
};

}  // namespace strata::data
