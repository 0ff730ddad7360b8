#include "trainer/pipeline_stage.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace strata::trainer {

std::vector<parallel::LayerRange> pipeline_parts(models::LanguageModel& model, int64_t chunks, const std::string& partition,
                                                 int64_t seq_len) {
  const auto& cfg = model.config();
  const bool flops = partition == "flops";
  if (!partition.empty() && partition != "params" && !flops)
    return parallel::explicit_partition(parallel::parse_layer_counts(partition), cfg.n_layer, chunks);
  if (flops && seq_len <= 0) fail("parallel.partition = flops needs the sequence length (train.seq_len), got {}", seq_len);
  parallel::PartitionCosts costs;
  costs.layers.assign(cfg.n_layer, 0.0);
  for (const auto& kv : model.named_parameters()) {
    const int64_t part = model.pipeline_part(kv.key());
    const double n = static_cast<double>(kv.value().numel());
    if (part < 0) costs.pre += flops ? 0.0 : n;  // a lookup, not a matmul
    else if (part >= cfg.n_layer) costs.post += flops ? 6 * n : n;
    else costs.layers[part] += flops ? 6 * n : n;
  }
  const double tied = static_cast<double>(cfg.vocab_size * cfg.d_model);
  if (cfg.tie_embeddings) costs.post += flops ? 6 * tied : tied;
  if (flops)
    for (auto& c : costs.layers) c += 12.0 * static_cast<double>(cfg.n_head * cfg.head_dim() * seq_len);
  return parallel::balanced_partition(costs, chunks);
}

bool pipeline_holds(models::LanguageModel& model, const std::string& name, const std::vector<parallel::LayerRange>& parts,
                    int64_t p, int64_t rank) {
  const int64_t C = static_cast<int64_t>(parts.size());
  const int64_t part = model.pipeline_part(name);
  const bool first = rank == 0, last = rank == (C - 1) % p;
  if (part < 0) return first || (last && model.config().tie_embeddings && name.find("tok_emb") != std::string::npos);
  if (part >= model.config().n_layer) return last;
  for (int64_t c = rank; c < C; c += p)
    if (part >= parts[c].begin && part < parts[c].end) return true;
  return false;
}

std::vector<std::string> pipeline_tied_params(models::LanguageModel& model, int64_t p) {
  std::vector<std::string> out;
  if (p == 1 || !model.config().tie_embeddings) return out;
  for (const auto& kv : model.named_parameters())
    if (model.pipeline_part(kv.key()) < 0 && kv.key().find("tok_emb") != std::string::npos) out.push_back(kv.key());
  return out;
}

ModelPipeStage::ModelPipeStage(models::LanguageModel& model, std::vector<parallel::LayerRange> parts, at::Device device)
    : model_(model), parts_(std::move(parts)), device_(device) {}

at::Tensor ModelPipeStage::forward(int64_t chunk, int64_t mb, const at::Tensor& input) {
  if (mb < 0 || mb >= static_cast<int64_t>(batches_.size()))
    fail("pipeline stage: micro-batch {} requested but {} batches were set", mb, batches_.size());
  const auto& range = parts_.at(chunk);
  at::Tensor x = chunk == 0 ? model_.forward_embed(batches_[mb].inputs.to(device_)) : input;
  x = model_.forward_layers(x, range.begin, range.end);
  if (chunk + 1 < static_cast<int64_t>(parts_.size())) return x;
  auto targets = batches_[mb].targets.to(device_);
  if (loss_fn_) return loss_fn_(x, targets) / static_cast<double>(batches_.size());
  auto logits = model_.forward_head(x);
  auto loss = at::cross_entropy_loss(logits.view({-1, logits.size(-1)}).to(at::kFloat), targets.view({-1}));
  return loss / static_cast<double>(batches_.size());
}

}  // namespace strata::trainer
