// `strata bench-snapshot`: what an in-memory snapshot costs next to a disk checkpoint of the same
// state. Numbers are measured in one run and printed; nothing passes or fails on them.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.hpp"
#include "snapshot/erasure.hpp"
#include "snapshot/serialize.hpp"
#include "snapshot/slots.hpp"
#include "trainer/recipe.hpp"
#include "trainer/snapshot_cli.hpp"
#include "trainer/trainer.hpp"

namespace strata::trainer {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct RunTimes {
  double wall_s = 0, stall_ms = 0, copy_ms = 0;
  int64_t rows = 0;
};

RunTimes timed_run(RunConfig cfg, bool snapshots, std::unique_ptr<Trainer>& keep) {
  cfg.snapshot.enabled = snapshots;
  fs::remove_all(cfg.run.dir);
  keep = std::make_unique<Trainer>(cfg, false);
  const auto t0 = Clock::now();
  keep->run();
  RunTimes r;
  r.wall_s = since(t0);
  std::ifstream in(fs::path(cfg.run.dir) / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("snapshot_stall_ms")) r.stall_ms += j["snapshot_stall_ms"].get<double>(), ++r.rows;
    if (j.contains("snapshot_copy_ms")) r.copy_ms += j["snapshot_copy_ms"].get<double>();
  }
  return r;
}

double ec_gbps(const snapshot::ReedSolomon& rs, size_t len, bool decode) {
  const int k = rs.k(), m = rs.m();
  std::vector<std::vector<uint8_t>> frags(k + m, std::vector<uint8_t>(len));
  std::mt19937_64 gen(7);
  for (int j = 0; j < k; ++j)
    for (auto& b : frags[j]) b = static_cast<uint8_t>(gen());
  std::vector<const uint8_t*> data;
  std::vector<uint8_t*> parity;
  for (int j = 0; j < k; ++j) data.push_back(frags[j].data());
  for (int p = 0; p < m; ++p) parity.push_back(frags[k + p].data());
  rs.encode(len, data, parity);
  // Decode: the first m data fragments are lost; the others and all parity survive.
  std::vector<int> have, want;
  std::vector<const uint8_t*> ptrs;
  std::vector<uint8_t*> out;
  std::vector<std::vector<uint8_t>> rebuilt(m, std::vector<uint8_t>(len));
  for (int f = m; f < k + m && static_cast<int>(have.size()) < k; ++f) have.push_back(f), ptrs.push_back(frags[f].data());
  for (int j = 0; j < m && j < k; ++j) want.push_back(j), out.push_back(rebuilt[j].data());
  int reps = 0;
  const auto t0 = Clock::now();
  do {
    if (decode) rs.decode(len, have, ptrs, want, out);
    else rs.encode(len, data, parity);
    ++reps;
  } while (since(t0) < 0.5);
  if (decode && rebuilt[0] != frags[0]) throw std::runtime_error("bench-snapshot: EC decode returned wrong bytes");
  return reps * static_cast<double>(len) * k / since(t0) / 1e9;
}

}  // namespace

void bench_snapshot(const SnapshotBenchOptions& o) {
  auto overrides = o.overrides;
  for (const char* kv : {"checkpoint.every=0", "train.log_every=1", "train.eval_every=0", "train.eval_batches=1"})
    overrides.push_back(kv);
  overrides.push_back("train.steps=" + std::to_string(o.steps));
  auto cfg = load_recipe(o.recipe, overrides);
  cfg.snapshot.every_steps = 1;
  cfg.snapshot.smp_idle_exit_s = 3;
  const std::string base = cfg.run.dir;
  std::unique_ptr<Trainer> t;
  cfg.run.dir = base + "/bench-none";
  const auto off = timed_run(cfg, false, t);
  cfg.run.dir = base + "/bench-snapshot";
  const auto on = timed_run(cfg, true, t);
  const double step_ms = 1e3 * off.wall_s / o.steps;
  std::cout << fmt::format("training {} steps ({} threads): {:.1f} ms/step without snapshots, {:.1f} ms/step with a snapshot every step\n",
                           o.steps, at::get_num_threads(), step_ms, 1e3 * on.wall_s / o.steps);
  std::cout << fmt::format("snapshot every step: stall {:.3f} ms/step ({:.2f}% of the step), background copy {:.2f} ms each\n",
                           on.stall_ms / std::max<int64_t>(1, on.rows), 100 * on.stall_ms / std::max<int64_t>(1, on.rows) / step_ms,
                           on.copy_ms / std::max<int64_t>(1, on.rows));

  auto st = t->capture_state(o.steps);
  auto slots = snapshot::ShmSlots::open("/strata-bench-snapshot", true);
  auto t0 = Clock::now();
  snapshot::PreparedState prep(st);
  prep.write(slots->begin_write(prep.bytes()));
  slots->commit(o.steps);
  const double snap_s = since(t0);
  const fs::path disk = base + "/bench-disk";
  fs::remove_all(disk);
  t0 = Clock::now();
  auto dir = checkpoint::save_checkpoint(disk, st);
  const double disk_s = since(t0);
  std::cout << fmt::format("state {:.2f} MB: snapshot into shared memory {:.2f} ms (synchronous), disk checkpoint {:.2f} ms "
                           "(fsynced) = {:.1f}x\n",
                           prep.bytes() / 1e6, 1e3 * snap_s, 1e3 * disk_s, disk_s / snap_s);
  t0 = Clock::now();
  auto back = slots->read(o.steps);
  t->restore_state(snapshot::deserialize_state(back->second.data(), back->second.size(), "bench"), "bench snapshot");
  const double rs_snap = since(t0);
  t0 = Clock::now();
  t->restore_state(checkpoint::load_checkpoint(dir), dir.string());
  const double rs_disk = since(t0);
  std::cout << fmt::format("restore: from shared memory {:.2f} ms, from the disk checkpoint {:.2f} ms (page cache warm)\n",
                           1e3 * rs_snap, 1e3 * rs_disk);
  snapshot::ShmSlots::unlink("/strata-bench-snapshot");
  fs::remove_all(disk);

  snapshot::ReedSolomon rs(static_cast<int>(o.ec_k), static_cast<int>(o.ec_m));
  const size_t len = static_cast<size_t>(o.ec_mb * 1e6 / o.ec_k) / 64 * 64;
  std::cout << fmt::format("erasure coding RS({}, {}) on one core, {:.0f} MB of data: encode {:.2f} GB/s, decode of {} lost "
                           "fragments {:.2f} GB/s\n",
                           o.ec_k, o.ec_m, len * o.ec_k / 1e6, ec_gbps(rs, len, false), std::min(o.ec_m, o.ec_k),
                           ec_gbps(rs, len, true));
}

}  // namespace strata::trainer
