#include "trainer/ckpt_cli.hpp"

#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/inspect.hpp"
#include "checkpoint/sliced.hpp"
#include "core/error.hpp"
#include "trainer/recipe.hpp"

namespace strata::trainer {
namespace fs = std::filesystem;
namespace {

fs::path resolve(const std::string& dir) {
  if (fs::exists(fs::path(dir) / "manifest.pb")) return dir;
  if (auto latest = checkpoint::latest_checkpoint(fs::path(dir) / "checkpoints")) return *latest;
  fail("strata ckpt: '{}' is neither a checkpoint directory (no manifest.pb) nor a run directory with checkpoints", dir);
}

std::string config_summary(const std::string& yaml, const std::string& where) {
  if (yaml.empty()) return "config: (none recorded)\n";
  try {
    const auto c = load_recipe_text(yaml, where);
    return fmt::format("config: model {} (n_layer {}, d_model {}, n_head {}, vocab {}) | train {} steps, micro_batch {} x "
                       "grad_accum {}, seq_len {} | optim {} lr {:.3g} | parallel dp {} tp {} pp {} zero1 {} | "
                       "checkpoint every {} keep {}{}\n",
                       c.model.arch, c.model.n_layer, c.model.d_model, c.model.n_head, c.model.vocab_size, c.train.steps,
                       c.train.micro_batch, c.train.grad_accum, c.train.seq_len, c.optim.name, c.optim.lr, c.parallel.dp,
                       c.parallel.tp, c.parallel.pp, c.parallel.zero1, c.checkpoint.every, c.checkpoint.keep,
                       c.checkpoint.async ? " async" : "");
  } catch (const Error& e) {
    return fmt::format("config: {} bytes of YAML that do not parse as a recipe ({})\n", yaml.size(), e.what());
  }
}

}  // namespace

CLI::App* add_ckpt_command(CLI::App& app, CkptCliOptions& o) {
  auto* c = app.add_subcommand("ckpt", "inspect or verify a checkpoint (whole-tensor or sliced format)");
  c->require_subcommand(1);
  o.inspect = c->add_subcommand("inspect", "print step, config summary, meta and every tensor with its slices");
  o.inspect->add_option("dir", o.dir, "checkpoint directory, or run directory (newest checkpoint)")->required();
  o.verify = c->add_subcommand("verify", "check every slice's size and CRC32C; exit code 1 names the corrupt ones");
  o.verify->add_option("dir", o.dir, "checkpoint directory, or run directory (newest checkpoint)")->required();
  return c;
}

int run_ckpt_command(const CkptCliOptions& o) {
  const fs::path dir = resolve(o.dir);
  if (*o.inspect) {
    checkpoint::CheckpointReader r(dir);
    std::string text = checkpoint::describe_checkpoint(dir);
    const auto nl = text.find('\n', text.find('\n') + 1);  // after the two header lines
    text.insert(nl + 1, config_summary(r.config_yaml(), dir.string() + "/manifest.pb (recipe)"));
    std::cout << text;
    return 0;
  }
  const auto rep = checkpoint::verify_checkpoint(dir);
  for (const auto& p : rep.problems) std::cout << "CORRUPT: " << p << "\n";
  std::cout << fmt::format("{}: {} tensors, {} slices, {:.3f} MB checked; {}\n", dir.string(), rep.tensors, rep.slices,
                           rep.bytes / 1e6, rep.problems.empty() ? "all checksums match" : fmt::format("{} problem(s)", rep.problems.size()));
  return rep.problems.empty() ? 0 : 1;
}

}  // namespace strata::trainer
