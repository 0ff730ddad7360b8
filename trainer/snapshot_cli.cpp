#include "trainer/snapshot_cli.hpp"

#include <cstdlib>

#include <spdlog/spdlog.h>

#include "snapshot/config.hpp"
#include "snapshot/names.hpp"

namespace strata::trainer {

CLI::App* add_smp_command(CLI::App& app, SmpCliOptions& o) {
  auto* c = app.add_subcommand("smp", "run a node's snapshot management process (normally started by the trainer)");
  auto& s = o.smp;
  c->add_option("--name", s.name, "shared-memory name of the job")->required();
  c->add_option("--node", s.node, "this node's index")->required();
  c->add_option("--nodes", s.nodes, "number of nodes")->required();
  c->add_option("--local-ranks", s.local_ranks, "trainer ranks on this node")->required();
  c->add_option("--ec-k", s.ec_k, "Reed-Solomon data fragments (0 = no erasure coding)")->capture_default_str();
  c->add_option("--ec-m", s.ec_m, "Reed-Solomon parity fragments")->capture_default_str();
  c->add_option("--port", o.port, "node i listens on port + i")->capture_default_str();
  c->add_option("--hosts", o.hosts, "comma-separated host of every node's SMP (default 127.0.0.1)");
  c->add_option("--persist-dir", s.persist_dir, "checkpoint root for persisted snapshots (node 0)");
  c->add_option("--persist-every-steps", s.persist_every_steps, "persist a snapshot every this many steps")->capture_default_str();
  c->add_option("--skip-every", s.skip_every, "do not persist multiples of this (the trainer checkpoints them)")->capture_default_str();
  c->add_option("--skip-step", s.skip_step, "do not persist this step (the trainer's last)")->capture_default_str();
  c->add_option("--keep", s.keep, "checkpoints to keep when persisting")->capture_default_str();
  c->add_option("--idle-exit-s", s.idle_exit_s, "exit after this long without a new snapshot (0 = never)")->capture_default_str();
  return c;
}

int run_smp_command(SmpCliOptions& o) {
  // The SMP logs at info whatever rank started it (it inherits the trainer's RANK, which sets warn).
  const char* env = std::getenv("STRATA_LOG_LEVEL");
  spdlog::set_level(env ? spdlog::level::from_str(env) : spdlog::level::info);
  snapshot::SnapshotConfig c;
  c.port = o.port;
  c.hosts = o.hosts;
  o.smp.peers = snapshot::smp_endpoints(c, o.smp.nodes);
  return snapshot::run_smp(o.smp);
}

CLI::App* add_snapshot_bench_command(CLI::App& app, SnapshotBenchOptions& o) {
  auto* c = app.add_subcommand("bench-snapshot", "snapshot stall and copy time vs a disk checkpoint, EC GB/s, restore time");
  c->add_option("recipe", o.recipe, "recipe to train (its run.dir is used as scratch)")->required();
  c->add_option("--set", o.overrides, "override a recipe key: section.key=value (repeatable)");
  c->add_option("--steps", o.steps, "training steps per timed run")->capture_default_str();
  c->add_option("--ec-k", o.ec_k, "RS data fragments for the EC throughput")->capture_default_str();
  c->add_option("--ec-m", o.ec_m, "RS parity fragments for the EC throughput")->capture_default_str();
  c->add_option("--ec-mb", o.ec_mb, "MB per fragment set for the EC throughput")->capture_default_str();
  return c;
}

}  // namespace strata::trainer
