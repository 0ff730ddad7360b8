#include "trainer/pipeline_cli.hpp"

#include <iostream>

#include <fmt/format.h>

#include "parallel/pipeline_schedule.hpp"
#include "parallel/pipeline_sim.hpp"

namespace strata::trainer {

CLI::App* add_pipeline_command(CLI::App& app, PipelineCliOptions& o) {
  auto* c = app.add_subcommand("pipeline", "print, check and simulate a pipeline schedule (gpipe, 1f1b, interleaved)");
  c->add_option("--schedule,-s", o.schedule, "gpipe | 1f1b | interleaved")->capture_default_str();
  c->add_option("-p", o.p, "pipeline stages (ranks)")->capture_default_str();
  c->add_option("-m", o.m, "micro-batches per step")->capture_default_str();
  c->add_option("-v", o.v, "chunks per rank (interleaved)")->capture_default_str();
  c->add_option("--t-f", o.t_f, "forward time of one micro-batch through one rank's layers")->capture_default_str();
  c->add_option("--t-b", o.t_b, "backward time")->capture_default_str();
  c->add_option("--t-comm", o.t_comm, "latency of one communication batch")->capture_default_str();
  c->add_flag("--rendezvous", o.rendezvous, "sends wait for the matching receive (NCCL-like)");
  c->add_flag("--quiet,-q", o.quiet, "only the summary line");
  return c;
}

int run_pipeline_command(const PipelineCliOptions& o) {
  const auto kind = parallel::parse_pipe_schedule(o.schedule);
  const auto s = parallel::make_schedule(kind, o.p, o.m, o.v);
  if (!o.quiet) std::cout << parallel::format_schedule(s);
  if (auto err = parallel::check_schedule(s); !err.empty()) {
    std::cout << "check: FAILED: " << err << "\n";
    return 1;
  }
  parallel::PipeSimCosts costs{o.t_f, o.t_b, o.t_comm, o.rendezvous};
  const auto res = parallel::simulate_schedule(s, costs);
  if (res.deadlock) {
    std::cout << "simulation: DEADLOCK\n" << res.deadlock_report;
    return 1;
  }
  int64_t peak = 0;
  for (int64_t r = 0; r < o.p; ++r) peak = std::max(peak, parallel::peak_live_activations(s, r));
  const double theory = double(o.p - 1) / (double(o.v) * o.m + o.p - 1);
  std::cout << fmt::format("{} p={} m={} v={}: makespan {:.3f} (ideal {:.3f}); bubble {:.4f} of wall time (theory {:.4f}), "
                           "{:.4f} of ideal (theory {:.4f}); peak live activations {} (max over ranks)\n",
                           to_string(kind), o.p, o.m, o.v, res.makespan, res.ideal, res.bubble_of_wall(), theory,
                           res.bubble_over_ideal(), double(o.p - 1) / (double(o.v) * o.m), peak);
  return 0;
}

}  // namespace strata::trainer
