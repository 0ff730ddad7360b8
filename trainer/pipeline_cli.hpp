// `strata pipeline`: print a pipeline schedule (per-rank op lists), check it, and simulate it
// (makespan, bubble fraction against the closed forms of specs/models.md §5).
#pragma once
#include <string>

#include <CLI/CLI.hpp>

namespace strata::trainer {

struct PipelineCliOptions {
  std::string schedule = "1f1b";
  int64_t p = 4, m = 8, v = 1;
  double t_f = 1.0, t_b = 2.0, t_comm = 0.0;
  bool rendezvous = false, quiet = false;
};

CLI::App* add_pipeline_command(CLI::App& app, PipelineCliOptions& o);
// Prints the schedule (unless quiet) and one summary line; returns the process exit code
// (1 when the check fails or the simulation deadlocks).
int run_pipeline_command(const PipelineCliOptions& o);

}  // namespace strata::trainer
