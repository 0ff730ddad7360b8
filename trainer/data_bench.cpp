#include "trainer/data_bench.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "data/prep.hpp"
#include "data/sampler.hpp"
#include "data/training_data.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

namespace strata::trainer {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Wall time of a fresh `steps`-step run (no evaluation but the final one-batch one).
double time_run(RunConfig cfg, const fs::path& dir, int64_t steps) {
  cfg.run.dir = dir.string();
  cfg.train.steps = steps;
  cfg.train.eval_every = 0;
  cfg.train.eval_batches = 1;
  cfg.train.log_every = std::max<int64_t>(1, steps);
  cfg.checkpoint.every = 0;
  fs::remove_all(dir);
  Trainer t(cfg, false);
  auto t0 = Clock::now();
  t.run();
  return seconds_since(t0);
}

}  // namespace

DataBenchResult bench_data(const DataBenchOptions& opt) {
  DataBenchResult r;
  RunConfig cfg = load_recipe(opt.recipe, opt.overrides);
  fs::path tmp = fs::temp_directory_path() / fmt::format("strata_bench_data_{}", ::getpid());
  fs::create_directories(tmp);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{tmp};

  // 1. prep throughput (byte tokenizer unless the recipe's datasets use SentencePiece: then the
  // first dataset's model is used, so the number matches what the recipe was prepared with).
  if (!opt.inputs.empty()) {
    data::PrepOptions p;
    p.inputs = opt.inputs;
    p.out = (tmp / "prep").string();
    p.threads = opt.prep_threads;
    p.force = true;
    auto first = data::dataset_paths(cfg.data).front();
    auto man = data::DatasetManifest::load(first);
    if (!man.tokenizer_model.empty()) {
      p.tokenizer = "sentencepiece";
      p.tokenizer_model = (fs::path(first) / man.tokenizer_model).string();
      p.specials = man.tokenizer.substr(man.tokenizer.find(':', 14) + 1);
    }
    auto res = data::prep_dataset(p);
    r.prep_mb_per_s = res.mb_per_s();
    r.prep_tokens_per_s = res.tokens_per_s();
  }

  // 2. loader throughput: the recipe's global batches, in step order, on one thread.
  const auto& t = cfg.train;
  const uint64_t G = static_cast<uint64_t>(t.micro_batch * t.grad_accum);
  data::TrainingData td(cfg.data, t.seq_len, cfg.run.seed, t.steps, G);
  int64_t tokens = 0, step = 0;
  auto t0 = Clock::now();
  while (seconds_since(t0) < opt.loader_seconds) {
    for (int64_t a = 0; a < t.grad_accum; ++a) {
      auto b = td.train_batch(data::micro_batch_indices(step, a, t.micro_batch, t.grad_accum, 0, 1));
      tokens += b.inputs.numel();
    }
    ++step;
  }
  r.loader_tokens_per_s = tokens / seconds_since(t0);

  // 3. trainer consumption: the difference of two runs cancels start-up, the final evaluation
  // and the checkpoint.
  const int64_t short_steps = 5, long_steps = short_steps + std::max<int64_t>(1, opt.train_steps);
  double a = time_run(cfg, tmp / "run_short", short_steps);
  double b = time_run(cfg, tmp / "run_long", long_steps);
  r.trainer_tokens_per_s = (long_steps - short_steps) * G * t.seq_len / std::max(b - a, 1e-9);

  spdlog::info("bench-data: {} (seq_len {}, {} sequences per step)", opt.recipe, t.seq_len, G);
  spdlog::info("  trainer consumes    {:>12.0f} tokens/s", r.trainer_tokens_per_s);
  spdlog::info("  loader delivers     {:>12.0f} tokens/s   = {:>8.1f}x the trainer", r.loader_tokens_per_s,
               r.loader_tokens_per_s / r.trainer_tokens_per_s);
  if (r.prep_tokens_per_s > 0)
    spdlog::info("  prep tokenizes      {:>12.0f} tokens/s   = {:>8.1f}x the trainer ({:.1f} MB/s)", r.prep_tokens_per_s,
                 r.prep_tokens_per_s / r.trainer_tokens_per_s, r.prep_mb_per_s);
  return r;
}

}  // namespace strata::trainer
