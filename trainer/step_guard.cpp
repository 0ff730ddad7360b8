#include "trainer/step_guard.hpp"

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <sstream>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "core/fs.hpp"

namespace strata::trainer {
namespace {

std::atomic<int> g_signal{0};

extern "C" void on_preempt_signal(int sig) { g_signal.store(sig); }

// "<step>[:<rank>]" -> (step, rank); rank -1 = every rank.
void parse_hook(const char* var, int64_t& step, int64_t& rank) {
  const char* v = std::getenv(var);
  if (!v || !*v) return;
  std::string s(v);
  try {
    auto colon = s.find(':');
    step = std::stoll(s.substr(0, colon));
    rank = colon == std::string::npos ? -1 : std::stoll(s.substr(colon + 1));
  } catch (const std::exception&) {
    fail("{}='{}': expected <step> or <step>:<rank>", var, s);
  }
}

}  // namespace

StepGuard::StepGuard(std::string policy, int64_t limit, parallel::ProcessGroup* world, int64_t world_rank,
                     at::Device device)
    : policy_(std::move(policy)), limit_(limit), world_(world), world_rank_(world_rank), device_(device) {
  if (policy_ != "skip" && policy_ != "rollback" && policy_ != "fail")
    fail("train.on_nonfinite must be skip, rollback or fail (got '{}')", policy_);
  parse_hook("STRATA_FAULT_NAN_AT", nan_step_, nan_rank_);
  parse_hook("STRATA_FAULT_SIGTERM_AT", term_step_, term_rank_);
  install_signal_handlers();
}

void StepGuard::install_signal_handlers() {
  g_signal.store(0);  // a new run starts unpreempted (earlier signals were handled by an earlier run)
  struct sigaction sa {};
  sa.sa_handler = on_preempt_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // collectives and file IO carry on; the loop looks at the flag
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

bool StepGuard::signal_received() { return g_signal.load() != 0; }
int StepGuard::last_signal() { return g_signal.load(); }

bool StepGuard::inject_nan(int64_t done) const {
  return done == nan_step_ && (nan_rank_ < 0 || nan_rank_ == world_rank_);
}

StepVerdict StepGuard::check(int64_t done, double loss, double grad_norm) {
  if (done == term_step_ && (term_rank_ < 0 || term_rank_ == world_rank_)) std::raise(SIGTERM);
  at::Tensor flags = at::zeros({2}, at::kFloat);
  auto* f = flags.data_ptr<float>();
  f[0] = std::isfinite(loss) && std::isfinite(grad_norm) ? 0.f : 1.f;
  f[1] = signal_received() ? 1.f : 0.f;
  if (world_ && world_->size() > 1) {
    at::Tensor d = flags.to(device_);
    world_->all_reduce(d, parallel::ReduceOp::Max)->wait();
    flags = d.cpu();
  }
  const auto* g = flags.data_ptr<float>();
  return {g[0] > 0.f, g[1] > 0.f};
}

std::string StepGuard::on_nonfinite(int64_t done, double loss, double grad_norm) {
  ++in_a_row_;
  const std::string what = fmt::format("step {}: non-finite loss or gradient norm (this rank: loss {}, grad norm {})",
                                       done, loss, grad_norm);
  if (policy_ == "fail")
    fail("{}; train.on_nonfinite = fail stops the run (skip or rollback would carry on); lower optim.lr or check the data",
         what);
  if (in_a_row_ > limit_)
    fail("{}: {} non-finite steps in a row exceed train.nonfinite_limit = {}; the run is diverging (lower optim.lr, "
         "raise optim.grad_clip strictness, or check the data)",
         what, in_a_row_, limit_);
  spdlog::warn("{}; train.on_nonfinite = {} ({} in a row, limit {})", what, policy_, in_a_row_, limit_);
  return policy_;
}

void StepGuard::mark_preempted(int64_t step) {
  const char* marker = std::getenv("STRATA_PREEMPT_MARKER");
  if (marker && *marker) write_file_atomic(marker, fmt::format("{}\n", step));
}

std::string StepGuard::skipped_meta() const {
  std::string out;
  for (auto s : skipped_) out += (out.empty() ? "" : ",") + std::to_string(s);
  return out;
}

void StepGuard::load_skipped_meta(const std::string& s) {
  skipped_.clear();
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) {
      try {
        skipped_.insert(std::stoll(item));
      } catch (const std::exception&) {
        fail("checkpoint meta 'nonfinite.skipped' = '{}' is not a list of steps", s);
      }
    }
}

}  // namespace strata::trainer
