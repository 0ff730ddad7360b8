// The `strata` command line: prep, train, generate, export, import, bench-model, bench-data.
#include <iostream>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/log.hpp"
#include "data/prep.hpp"
#include "growth/apply.hpp"
#include "parallel/runtime.hpp"
#include "parallel/world.hpp"
#include "trainer/ckpt_cli.hpp"
#include "trainer/data_bench.hpp"
#include "trainer/generate.hpp"
#include "trainer/pipeline_cli.hpp"
#include "trainer/hf_interchange.hpp"
#include "trainer/model_bench.hpp"
#include "trainer/recipe.hpp"
#include "trainer/snapshot_cli.hpp"
#include "trainer/trainer.hpp"

using namespace strata;

int main(int argc, char** argv) {
  CLI::App app{"Strata: LLM pretraining in C++ on LibTorch"};
  app.require_subcommand(1);

  data::PrepOptions prep;
  auto* prep_cmd = app.add_subcommand("prep", "tokenize text into a dataset directory (train/val shards + manifest)");
  prep_cmd->add_option("--input,-i", prep.inputs, "text files, directories, or *.jsonl files")->required();
  prep_cmd->add_option("--out,-o", prep.out, "dataset directory to write")->required();
  prep_cmd->add_option("--tokenizer", prep.tokenizer, "tokenizer: byte | sentencepiece")->capture_default_str();
  prep_cmd->add_option("--tokenizer-model", prep.tokenizer_model, "SentencePiece .model to use (copied into the dataset)");
  prep_cmd->add_flag("--train-tokenizer", prep.train_tokenizer, "train a SentencePiece tokenizer on the inputs first");
  prep_cmd->add_option("--vocab-size", prep.vocab_size, "vocabulary of the trained tokenizer")->capture_default_str();
  prep_cmd->add_option("--model-type", prep.model_type, "trained tokenizer: bpe | unigram")->capture_default_str();
  prep_cmd->add_option("--specials", prep.specials, "SentencePiece special pieces, e.g. 'bos=<s>,eos=</s>,pad=<pad>,mask=[MASK],cls=[CLS],sep=[SEP]' (role= drops one)");
  prep_cmd->add_option("--jsonl-field", prep.jsonl_field, "text field of JSONL records")->capture_default_str();
  prep_cmd->add_option("--threads", prep.threads, "tokenizer threads (0 = all cores)")->capture_default_str();
  prep_cmd->add_option("--val-every", prep.val_every, "every N-th document goes to validation")->capture_default_str();
  prep_cmd->add_flag("--force", prep.force, "rebuild even if the inputs are unchanged");

  std::string recipe;
  std::vector<std::string> sets;
  bool resume = false, print_config = false;
  auto* train_cmd = app.add_subcommand("train", "pretrain a model from a YAML recipe");
  train_cmd->add_option("recipe", recipe, "recipe file (YAML)")->required();
  train_cmd->add_option("--set", sets, "override a recipe key: section.key=value (repeatable)");
  train_cmd->add_flag("--resume", resume, "continue from the newest checkpoint in run.dir");
  train_cmd->add_flag("--print-config", print_config, "print the resolved recipe and exit");

  trainer::GenerateOptions gen;
  auto* gen_cmd = app.add_subcommand("generate", "sample text from a trained run");
  gen_cmd->add_option("--run", gen.run_dir, "run directory")->required();
  gen_cmd->add_option("--prompt", gen.prompt, "text to continue");
  gen_cmd->add_option("--max-tokens", gen.max_new_tokens, "tokens to generate")->capture_default_str();
  gen_cmd->add_option("--temperature", gen.temperature, "sampling temperature (0 = greedy)")->capture_default_str();
  gen_cmd->add_option("--top-k", gen.top_k, "sample from the k most likely tokens (0 = all)")->capture_default_str();
  gen_cmd->add_option("--seed", gen.seed, "sampling seed")->capture_default_str();

  std::string export_run, export_format = "hf", export_out;
  auto* export_cmd = app.add_subcommand("export", "write a run's model in another framework's format");
  export_cmd->add_option("--run", export_run, "run directory (newest checkpoint) or checkpoint directory")->required();
  export_cmd->add_option("--format", export_format, "hf: Hugging Face model.safetensors + config.json")
      ->check(CLI::IsMember({"hf"}))
      ->capture_default_str();
  export_cmd->add_option("--out,-o", export_out, "directory to write")->required();

  std::string import_hf_dir, import_out;
  auto* import_cmd = app.add_subcommand("import", "turn a Hugging Face model directory into a Strata checkpoint");
  import_cmd->add_option("--hf", import_hf_dir, "directory with config.json and model.safetensors")->required();
  import_cmd->add_option("--out,-o", import_out, "checkpoint directory to create (with a model.yaml to include)")->required();

  trainer::ModelBenchOptions bench;
  auto* bench_cmd = app.add_subcommand("bench-model", "time training steps of a model preset on random tokens");
  bench_cmd->add_option("recipe", bench.recipe, "recipe or preset (its model section)")->required();
  bench_cmd->add_option("--set", bench.overrides, "override a recipe key: section.key=value (repeatable)");
  bench_cmd->add_option("--batch", bench.batch, "sequences per step")->capture_default_str();
  bench_cmd->add_option("--seq", bench.seq_len, "tokens per sequence")->capture_default_str();
  bench_cmd->add_option("--steps", bench.steps, "timed steps")->capture_default_str();
  bench_cmd->add_option("--warmup", bench.warmup, "untimed steps first")->capture_default_str();
  bench_cmd->add_option("--threads", bench.threads, "intra-op threads (0 = all cores)")->capture_default_str();
  bench_cmd->add_option("--device", bench.device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  bench_cmd->add_option("--dtype", bench.dtype, "fp32 | bf16 (autocast on the device: CUDA, or CPU with bf16 matmuls)")->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str();
  bench_cmd->add_option("--optimizer", bench.optimizer,
                        "none (forward+backward) | adamw (a full training step, fused AdamW) | adamw-exact (the op-by-op "
                        "AdamW loop) | sophia (Sophia's per-step update; its curvature refresh pass is not run)")
      ->check(CLI::IsMember({"none", "adamw", "adamw-exact", "sophia"}))
      ->capture_default_str();
  bench_cmd->add_flag("--fused-loss", bench.fused_loss,
                      "LM head + cross-entropy in row chunks (models/blocks/linear_cross_entropy.hpp)");
  bench_cmd->add_flag("!--no-cpu-cache", bench.cpu_cache,
                      "CPU: c10's default allocator instead of Strata's caching one (trainer/cpu_allocator.hpp), for A/B");
  bench_cmd->add_option("--save-init", bench.save_init,
                        "write the initial weights and the batch to this safetensors file (for the PyTorch reference's --load)");

  trainer::DataBenchOptions dbench;
  auto* dbench_cmd = app.add_subcommand("bench-data", "prep and loader throughput next to the trainer's consumption");
  dbench_cmd->add_option("recipe", dbench.recipe, "recipe whose data, batch shape and model are measured")->required();
  dbench_cmd->add_option("--set", dbench.overrides, "override a recipe key: section.key=value (repeatable)");
  dbench_cmd->add_option("--input,-i", dbench.inputs, "text to time `prep` on (e.g. datasets/kjv.txt)");
  dbench_cmd->add_option("--prep-threads", dbench.prep_threads, "prep tokenizer threads (0 = all cores)")->capture_default_str();
  dbench_cmd->add_option("--train-steps", dbench.train_steps, "timed trainer steps")->capture_default_str();

  trainer::CkptCliOptions ckpt;
  auto* ckpt_cmd = trainer::add_ckpt_command(app, ckpt);
  trainer::PipelineCliOptions pipe;
  auto* pipe_cmd = trainer::add_pipeline_command(app, pipe);

  trainer::SmpCliOptions smp;
  auto* smp_cmd = trainer::add_smp_command(app, smp);
  trainer::SnapshotBenchOptions sbench;
  auto* sbench_cmd = trainer::add_snapshot_bench_command(app, sbench);

  std::string grow_from, grow_to, grow_out;
  std::vector<std::string> grow_sets;
  auto* grow_cmd = app.add_subcommand("grow", "grow a checkpoint into the model of a target recipe (its growth: section picks the operator)");
  grow_cmd->add_option("--from", grow_from, "checkpoint directory or run directory (newest checkpoint) of the small model")->required();
  grow_cmd->add_option("--to", grow_to, "target recipe (YAML)")->required();
  grow_cmd->add_option("--out", grow_out, "run directory of the target run (default: the target's run.dir)");
  grow_cmd->add_option("--set", grow_sets, "override a target recipe key: section.key=value (repeatable)");

  CLI11_PARSE(app, argc, argv);
  auto world = parallel::world_from_env();
  init_logging(static_cast<int>(world.rank), static_cast<int>(world.size));
  try {
    if (*prep_cmd) {
      data::prep_dataset(prep);
    } else if (*grow_cmd) {
      if (!grow_out.empty()) grow_sets.push_back("run.dir=" + grow_out);
      auto target = trainer::load_recipe(grow_to, grow_sets);
      if (!target.growth.enabled()) fail("strata grow: {} has no growth.operator (g_stack or bert2bert)", grow_to);
      std::filesystem::path from = grow_from;
      if (auto latest = checkpoint::latest_checkpoint(from / "checkpoints")) from = *latest;
      auto src = checkpoint::load_checkpoint(from);
      auto source = trainer::load_recipe_text(src.config_yaml, from.string() + "/manifest.pb (recipe)");
      auto grown = growth::grow_checkpoint(src, source.model, target.model, target.growth, trainer::dump_recipe(target));
      auto dir = checkpoint::save_checkpoint(std::filesystem::path(target.run.dir) / "checkpoints", grown);
      spdlog::info("grow: {} ({}-layer d_model {}) -> {} ({}-layer d_model {}, {}); continue with `strata train {}{} --resume`",
                   from.string(), source.model.n_layer, source.model.d_model, dir.string(), target.model.n_layer,
                   target.model.d_model, target.growth.op, grow_to, grow_out.empty() ? "" : " --set run.dir=" + grow_out);
    } else if (*dbench_cmd) {
      trainer::bench_data(dbench);
    } else if (*train_cmd) {
      auto cfg = trainer::load_recipe(recipe, sets);
      if (print_config) {
        std::cout << trainer::dump_recipe(cfg);
        return 0;
      }
      trainer::Trainer t(cfg, resume);
      auto res = t.run();
      spdlog::info("done: {} steps, final loss {:.4f}, val loss {:.4f}; run directory {}", res.steps_done, res.final_loss,
                   res.final_val_loss, cfg.run.dir);
    } else if (*smp_cmd) {
      return trainer::run_smp_command(smp);
    } else if (*sbench_cmd) {
      trainer::bench_snapshot(sbench);
    } else if (*ckpt_cmd) {
      return trainer::run_ckpt_command(ckpt);
    } else if (*pipe_cmd) {
      return trainer::run_pipeline_command(pipe);
    } else if (*gen_cmd) {
      std::cout << trainer::generate_text(gen) << std::endl;
    } else if (*export_cmd) {
      trainer::export_hf(export_run, export_out);
    } else if (*import_cmd) {
      trainer::import_hf(import_hf_dir, import_out);
    } else if (*bench_cmd) {
      trainer::bench_model(bench);
    }
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    parallel::shutdown_runtime(false);
    return 1;
  } catch (const c10::Error& e) {
    spdlog::error("LibTorch error: {}", e.what_without_backtrace());
    parallel::shutdown_runtime(false);
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    parallel::shutdown_runtime(false);
    return 1;
  }
  parallel::shutdown_runtime(true);
  return 0;
}
