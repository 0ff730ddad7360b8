// The model side of pipeline parallelism: which layers each pipeline chunk runs, which parameters a
// pipeline rank holds, and the PipeStage that runs a chunk of a LanguageModel on one micro-batch.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "data/batch.hpp"
#include "models/language_model.hpp"
#include "parallel/pipeline_partition.hpp"
#include "parallel/pipeline_runtime.hpp"

namespace strata::trainer {

// Layer ranges of the p * v chunks from parallel.partition: explicit layer counts per chunk (e.g.
// "3,3,2,2"), or balanced by "params" (parameter count; "" too) or "flops" (training FLOPs per token
// at seq_len: 6 per matmul parameter plus attention's 12 * d_attn * T per layer; embedding lookups
// cost nothing). The embeddings sit on chunk 0 and the final norm + head on the last chunk (a tied
// head counted there as the matmul it costs).
std::vector<parallel::LayerRange> pipeline_parts(models::LanguageModel& model, int64_t chunks, const std::string& partition,
                                                 int64_t seq_len = 0);

// True when parameter `name` is needed by pipeline rank `rank` of `p` (chunks c with c % p == rank).
// A tied embedding is held by both the first and the last rank.
bool pipeline_holds(models::LanguageModel& model, const std::string& name, const std::vector<parallel::LayerRange>& parts,
                    int64_t p, int64_t rank);

// Names of the parameters shared by the first and the last chunk (the tied embedding), whose
// gradients must be summed between the two ends; empty when untied or p = 1.
std::vector<std::string> pipeline_tied_params(models::LanguageModel& model, int64_t p);

// Runs chunks of `model`: chunk 0 embeds batches[mb].inputs, the last chunk applies the head and
// returns mean cross-entropy against batches[mb].targets divided by the micro-batch count (or, with a
// LossFn, that function of the last layer's output).
class ModelPipeStage : public parallel::PipeStage {
 public:
  ModelPipeStage(models::LanguageModel& model, std::vector<parallel::LayerRange> parts, at::Device device);
  void set_batches(std::vector<data::Batch> batches) { batches_ = std::move(batches); }
  // Replaces the head and the mean cross-entropy, e.g. with a reweighting::Reweighter::loss over the
  // last stage's dp group or the fused head loss; it receives the last layer's output (before the
  // final norm). The result is still divided by the micro-batch count.
  using LossFn = std::function<at::Tensor(const at::Tensor& last_layer_out, const at::Tensor& targets)>;
  void set_loss_fn(LossFn fn) { loss_fn_ = std::move(fn); }
  at::Tensor forward(int64_t chunk, int64_t mb, const at::Tensor& input) override;

 private:
  models::LanguageModel& model_;
  std::vector<parallel::LayerRange> parts_;
  at::Device device_;
  std::vector<data::Batch> batches_;
  LossFn loss_fn_;
};

}  // namespace strata::trainer
