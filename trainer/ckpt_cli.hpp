// `strata ckpt inspect <dir>`: the manifest (step, config summary, meta, every tensor with global
// shape, dtype and slices). `strata ckpt verify <dir>`: reads every slice and checks its size and
// CRC32C, naming each corrupt one; exit code 1 when any is bad. <dir> is a checkpoint directory or a
// run directory (its newest checkpoint).
#pragma once
#include <string>

#include <CLI/CLI.hpp>

namespace strata::trainer {

struct CkptCliOptions {
  std::string dir;
  CLI::App* inspect = nullptr;
  CLI::App* verify = nullptr;
};

CLI::App* add_ckpt_command(CLI::App& app, CkptCliOptions& o);
// Returns the process exit code.
int run_ckpt_command(const CkptCliOptions& o);

}  // namespace strata::trainer
