// `strata smp` (a node's snapshot management process, snapshot/smp.hpp) and `strata bench-snapshot`
// (snapshot cost next to a disk checkpoint, erasure-coding throughput, restore time).
#pragma once
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "snapshot/smp.hpp"

namespace strata::trainer {

struct SmpCliOptions {
  snapshot::SmpOptions smp;
  std::string hosts;
  int port = 29700;
};
CLI::App* add_smp_command(CLI::App& app, SmpCliOptions& o);
int run_smp_command(SmpCliOptions& o);

struct SnapshotBenchOptions {
  std::string recipe;
  std::vector<std::string> overrides;
  int64_t steps = 20;
  int64_t ec_k = 4, ec_m = 2;
  double ec_mb = 64;  // bytes per node for the erasure-coding throughput
};
CLI::App* add_snapshot_bench_command(CLI::App& app, SnapshotBenchOptions& o);
void bench_snapshot(const SnapshotBenchOptions& o);

}  // namespace strata::trainer
