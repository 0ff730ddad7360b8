#include "data/training_data.hpp"

#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "data/tokenizer.hpp"

namespace strata::data {

std::vector<std::string> dataset_paths(const DataConfig& cfg) {
  if (!cfg.path.empty() && !cfg.paths.empty())
    fail("data.path and data.paths are both set: use data.path for one dataset or data.paths for a mixture");
  if (cfg.path.empty() && cfg.paths.empty())
    fail("data.path is empty: point it (or data.paths) at a dataset prepared by `strata prep`");
  return cfg.paths.empty() ? std::vector<std::string>{cfg.path} : cfg.paths;
}

std::vector<MixturePhase> mixture_phases(const DataConfig& cfg, size_t n, int64_t steps) {
  auto check = [&](const std::vector<double>& w, const char* key) {
    if (w.size() != n) fail("{} has {} entries but there are {} datasets (data.paths)", key, w.size(), n);
    double sum = 0;
    for (double x : w) sum += x;
    if (sum <= 0) fail("{} must have a positive sum", key);
  };
  std::vector<MixturePhase> phases(1);
  phases[0].weights = cfg.weights.empty() ? std::vector<double>(n, 1.0) : cfg.weights;
  check(phases[0].weights, "data.weights");
  if (cfg.final_weights.empty() != (cfg.final_fraction <= 0))
    fail("data.final_weights and data.final_fraction go together (got {} weights, fraction {})",
         cfg.final_weights.size(), cfg.final_fraction);
  if (!cfg.final_weights.empty()) {
    check(cfg.final_weights, "data.final_weights");
    int64_t at = steps - static_cast<int64_t>(std::llround(cfg.final_fraction * static_cast<double>(steps)));
    if (at <= 0) fail("data.final_fraction = {} leaves no step before the switch (train.steps = {})", cfg.final_fraction, steps);
    phases.push_back({at, cfg.final_weights});
  }
  return phases;
}

void check_model_vocab(const DatasetManifest& m, const std::string& path, int64_t model_vocab) {
  if (m.vocab_size > model_vocab)
    fail("dataset '{}' uses a vocabulary of {} tokens ({}) but model.vocab_size is {}: set model.vocab_size >= {}",
         path, m.vocab_size, m.tokenizer, model_vocab, m.vocab_size);
}

TrainingData::TrainingData(const DataConfig& cfg, int64_t seq_len, uint64_t seed, int64_t steps, uint64_t global_batch)
    : cfg_(cfg), seq_len_(seq_len) {
  auto paths = dataset_paths(cfg);
  for (size_t k = 0; k < paths.size(); ++k) {
    Source s;
    s.path = paths[k];
    s.name = std::filesystem::path(paths[k]).lexically_normal().filename().string();
    if (s.name.empty()) s.name = std::filesystem::path(paths[k]).lexically_normal().parent_path().filename().string();
    s.train = std::make_unique<TokenDataset>(paths[k], "train");
    s.val = std::make_unique<TokenDataset>(paths[k], "val");
    const auto& m = s.train->manifest();
    if (tokenizer_kind(m.tokenizer) != cfg.tokenizer)
      fail("dataset '{}' was prepared with tokenizer '{}' but data.tokenizer is '{}'", paths[k], m.tokenizer,
           cfg.tokenizer);
    if (k > 0 && m.tokenizer != sources_[0].train->manifest().tokenizer)
      fail("datasets '{}' and '{}' use different tokenizers ({} vs {}): a mixture needs one tokenizer", paths[0],
           paths[k], sources_[0].train->manifest().tokenizer, m.tokenizer);
    // Source 0 keeps the run seed, so a single dataset samples as it always did.
    uint64_t source_seed = seed + k * 0x9e3779b97f4a7c15ULL;
    s.train_loader = std::make_unique<BatchLoader>(*s.train, seq_len, source_seed, true);
    s.val_loader = std::make_unique<BatchLoader>(*s.val, seq_len, seed, false);
    sources_.push_back(std::move(s));
  }
  if (cfg.objective != "auto" && cfg.objective != "clm" && cfg.objective != "mlm")
    fail("data.objective must be auto, clm or mlm (got '{}')", cfg.objective);
  if (cfg.document_mask || cfg.objective == "mlm") {
    auto tok = make_tokenizer(manifest().tokenizer, paths[0]);
    eos_ = tok->specials().eos;
    if (cfg.objective == "mlm") {
      if (tok->specials().mask < 0)
        fail("data.objective = mlm needs a [MASK] token, but dataset '{}' was prepared with tokenizer '{}' which has "
             "none; re-run `strata prep` with a tokenizer that defines one",
             paths[0], manifest().tokenizer);
      MlmOptions o;
      o.mask_prob = cfg.mlm_probability;
      o.seed = seed ^ 0x6D6C6D5F74726169ULL;  // "mlm_trai"
      mlm_train_ = std::make_unique<MlmCollator>(*tok, o);
      o.seed = seed ^ 0x6D6C6D5F76616C5FULL;  // "mlm_val_"
      mlm_val_ = std::make_unique<MlmCollator>(*tok, o);
    }
  }
  auto phases = mixture_phases(cfg, sources_.size(), steps);
  sampler_ = std::make_unique<MixtureSampler>(sources_.size(), phases, global_batch, seed);
  if (sources_.size() > 1) {
    auto describe = [&](size_t p) {
      std::string out;
      for (size_t k = 0; k < sources_.size(); ++k)
        out += fmt::format("{}{} {:.3f}", k ? ", " : "", sources_[k].name, sampler_->weights_at(phases[p].start_step)[k]);
      return out;
    };
    spdlog::info("data: mixture of {} datasets: {}", sources_.size(), describe(0));
    for (size_t p = 1; p < phases.size(); ++p)
      spdlog::info("data: from step {}: {}", phases[p].start_step, describe(p));
  }
}

uint64_t TrainingData::train_tokens() const {
  uint64_t n = 0;
  for (const auto& s : sources_) n += s.train->n_tokens();
  return n;
}

void TrainingData::finish(Batch& b, const std::vector<uint64_t>& indices, bool train) const {
  if (cfg_.document_mask) add_document_ids(b, eos_);
  if (mlm_train_ && !train) {  // fixed validation masks
    auto m = (*mlm_val_)(b.inputs, indices);
    b.inputs = m.input_ids;
    b.targets = m.labels;
  }
  if (train) apply_objective(b, indices);  // the model sees the T inputs, some masked, and predicts the originals
}

std::string resolve_objective(const std::string& objective, bool bidirectional_model, const std::string& arch) {
  if (objective == "auto") return bidirectional_model ? "mlm" : "clm";
  if (objective == "clm" && bidirectional_model)
    fail("data.objective = clm with model.arch = {}: a bidirectional model sees the token it should predict; use "
         "data.objective = mlm (or auto)",
         arch);
  if (objective != "clm" && objective != "mlm") fail("data.objective must be auto, clm or mlm (got '{}')", objective);
  return objective;
}

Batch TrainingData::train_batch(const std::vector<uint64_t>& indices) const {
  const int64_t B = static_cast<int64_t>(indices.size()), T = seq_len_;
  at::Tensor buf = at::empty({B, T + 1}, at::kLong);
  at::Tensor src = at::empty({B}, at::kLong);
  int64_t* p = buf.data_ptr<int64_t>();
  int64_t* q = src.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    auto pick = sampler_->pick(indices[b]);
    sources_[pick.source].train_loader->fill(pick.local, p + b * (T + 1));
    q[b] = static_cast<int64_t>(pick.source);
  }
  Batch out{buf.narrow(1, 0, T).contiguous(), buf.narrow(1, 1, T).contiguous(), {}, {}, src};
  finish(out, indices, true);
  return out;
}

Batch TrainingData::val_batch(size_t k, const std::vector<uint64_t>& indices) const {
  if (k >= sources_.size()) fail("validation set {} out of range ({} datasets)", k, sources_.size());
  Batch out = sources_[k].val_loader->get(indices);
  out.sources.fill_(static_cast<int64_t>(k));
  finish(out, indices, false);
  return out;
}

}  // namespace strata::data
