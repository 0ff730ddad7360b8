// Starting a node's SMP from a trainer: detached from the trainer's process tree (fork, setsid,
// fork again, exec of this binary's `smp` subcommand), so torchrun restarting the workers or the
// trainer crashing leaves it running. Idempotent: nothing is started while the node's lock is held.
#pragma once
#include <string>
#include <vector>

#include "snapshot/wire.hpp"

namespace strata::snapshot {

// True when a process holds the lock file (a live SMP).
bool smp_running(const std::string& lock_file);
// Starts `/proc/self/exe <args...>` as a daemon writing to log_file, unless one is running.
// Returns true when it started one.
bool ensure_smp(const std::string& lock_file, const std::vector<std::string>& args, const std::string& log_file);
// Waits until the SMP at `ep` answers; fails after timeout_s naming the endpoint.
void wait_for_smp(const Endpoint& ep, double timeout_s);

}  // namespace strata::snapshot
