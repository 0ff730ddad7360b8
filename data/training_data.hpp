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
  TrainingData(const DataConfig& cfg, int64_t seq_len, uint64_t seed, int64_t steps, uint64_t global_batch);

  // Training sequences for global sample indices (mixture and schedule applied).
  Batch train_batch(const std::vector<uint64_t>& indices) const;
  // Validation sequences of dataset k, in stream order: index i is always the same window.
  Batch val_batch(size_t k, const std::vector<uint64_t>& indices) const;

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
  void finish(Batch& b) const;

  DataConfig cfg_;
  int64_t seq_len_;
  int32_t eos_ = -1;
  std::vector<Source> sources_;
  std::unique_ptr<MixtureSampler> sampler_;
};

}  // namespace strata::data
