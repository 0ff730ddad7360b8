// The data side of a training run, built from the recipe's `data` section: the train datasets
// mixed by weight (with the schedule), each dataset's fixed validation set, and checks that they
// agree on the tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.hpp"
#include "data/config.hpp"
#include "data/dataset.hpp"
#include "data/mixture.hpp"
#include "data/mlm.hpp"

namespace strata::data {

// The dataset directories the config names (data.path or data.paths), checked.
std::vector<std::string> dataset_paths(const DataConfig& cfg);
// The weight schedule: data.weights from step 0, data.final_weights from
// steps - round(final_fraction * steps). Errors name the recipe key.
std::vector<MixturePhase> mixture_phases(const DataConfig& cfg, size_t n_sources, int64_t steps);

// Fails (naming the dataset and both sizes) when the model's vocabulary cannot hold the dataset's.
void check_model_vocab(const DatasetManifest& m, const std::string& path, int64_t model_vocab);

class TrainingData {
 public:
  // global_batch: sequences per optimizer step; steps: train.steps (places the weight switch).
  // cfg.objective = mlm masks rows (auto is clm here: the trainer resolves it from the model first).
  TrainingData(const DataConfig& cfg, int64_t seq_len, uint64_t seed, int64_t steps, uint64_t global_batch);

  // Training sequences for global sample indices (mixture and schedule applied).
  Batch train_batch(const std::vector<uint64_t>& indices) const;
  // Validation sequences of dataset k, in stream order: index i is always the same window.
  Batch val_batch(size_t k, const std::vector<uint64_t>& indices) const;

  // Applies the training objective to rows read elsewhere (e.g. Sophia's refresh batches): MLM
  // masking with the training seed, nothing for clm.
  void apply_objective(Batch& b, const std::vector<uint64_t>& indices) const {
    if (mlm_train_) {
      auto m = (*mlm_train_)(b.inputs, indices);
      b.inputs = m.input_ids;
      b.targets = m.labels;
    }
  }
  bool masked_lm() const { return mlm_train_ != nullptr; }

  size_t n_sources() const { return sources_.size(); }
  const std::string& name(size_t k) const { return sources_[k].name; }  // the directory's name
  const std::string& path(size_t k) const { return sources_[k].path; }
  const DatasetManifest& manifest() const { return sources_[0].train->manifest(); }  // shared tokenizer
  uint64_t train_tokens() const;
  const MixtureSampler& sampler() const { return *sampler_; }

 private:
  struct Source {
    std::string path, name;
    std::unique_ptr<TokenDataset> train, val;
    std::unique_ptr<BatchLoader> train_loader, val_loader;
  };
  void finish(Batch& b, const std::vector<uint64_t>& indices, bool train) const;

  DataConfig cfg_;
  int64_t seq_len_;
  int32_t eos_ = -1;
  std::vector<Source> sources_;
  std::unique_ptr<MixtureSampler> sampler_;
  // MLM: training and validation rows are masked with different seeds; validation masks are fixed
  // (a function of the validation index), so evaluations are comparable across steps and runs.
  std::unique_ptr<MlmCollator> mlm_train_, mlm_val_;
};

// data.objective = auto -> mlm for a bidirectional model, clm otherwise; an explicit choice that
// contradicts the model (clm for a bidirectional model) fails naming the key.
std::string resolve_objective(const std::string& objective, bool bidirectional_model, const std::string& arch);

}  // namespace strata::data
