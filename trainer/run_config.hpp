// The typed, validated form of a YAML recipe: one section per concern.
#pragma once
#include <cstdint>
#include <string>

#include "checkpoint/config.hpp"
#include "data/config.hpp"
#include "growth/config.hpp"
#include "models/config.hpp"
#include "optim/config.hpp"
#include "parallel/config.hpp"
#include "reweighting/config.hpp"
#include "sparsity/config.hpp"
#include "snapshot/config.hpp"

namespace strata::trainer {

struct RunSection {
  std::string name = "run";
  std::string dir = "runs/run";
  int64_t seed = 1234;
};

struct TrainSection {
  int64_t steps = 100;
  int64_t micro_batch = 8;
  int64_t grad_accum = 1;
  int64_t seq_len = 128;
  int64_t log_every = 10;
  int64_t eval_every = 50;   // 0 = only at the end
  int64_t eval_batches = 8;  // micro-batches of validation data per evaluation
  int64_t threads = 0;       // intra-op threads; 0 = all cores
  std::string device = "auto";  // auto | cpu | cuda
  std::string dtype = "fp32";   // fp32 | bf16 (autocast; master weights stay fp32)
  bool activation_checkpointing = false;  // recompute each block in backward (less activation memory)
  bool fused_loss = false;  // LM head + cross-entropy in row chunks (models/blocks/linear_cross_entropy.hpp)
  bool cpu_cache = true;    // CPU runs: cache freed large tensor buffers (trainer/cpu_allocator.hpp)
  std::string init_from;                  // start from the model weights of a checkpoint or run directory
  std::string on_nonfinite = "skip";      // skip | rollback | fail: a NaN/inf loss or gradient norm (trainer/step_guard.hpp)
  int64_t nonfinite_limit = 5;            // that many non-finite steps in a row stop the run anyway
};

struct RunConfig {
  RunSection run;
  models::ModelConfig model;
  data::DataConfig data;
  TrainSection train;
  optim::OptimConfig optim;
  optim::ScheduleConfig schedule;
  checkpoint::CheckpointConfig checkpoint;
  parallel::ParallelConfig parallel;
  growth::GrowthConfig growth;
  reweighting::ReweightConfig reweighting;
  sparsity::SparsityConfig sparsity;
  snapshot::SnapshotConfig snapshot;
};

}  // namespace strata::trainer
