// This process's place in the job: rank, world size, local rank, and where the rendezvous store
// lives. Read from the launcher's environment, in this order: torchrun, SLURM (srun), MPI
// (OpenMPI / MPICH / PMI), else a single process.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace strata::parallel {

struct World {
  int64_t rank = 0;
  int64_t size = 1;
  int64_t local_rank = 0;
  int64_t local_size = 1;
  std::string launcher = "single";  // torchrun | slurm | mpi | single
  std::string master_addr;          // rendezvous store host (torchrun, SLURM; MPI only if MASTER_ADDR is set)
  int master_port = 0;
  // torchrun's agent already serves the store: every rank is a client, keys under store_prefix.
  bool agent_store = false;
  std::string store_prefix;
  bool is_main() const { return rank == 0; }
  std::string describe() const;
};

// Looks up an environment variable; returns nullptr when unset (std::getenv semantics).
using EnvLookup = std::function<const char*(const char*)>;

World world_from_env();
World world_from_env(const EnvLookup& env);
// Convenience for tests: a fixed map of variables.
World world_from_env(const std::map<std::string, std::string>& vars);

// SLURM host lists: "node[01-03,7],gpu-a5" -> node01 node02 node03 node7 gpu-a5 (zero padding kept).
std::vector<std::string> expand_nodelist(const std::string& list);
// SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE: "2(x3),1" -> 2 2 2 1.
std::vector<int64_t> expand_tasks_per_node(const std::string& spec);
// The rendezvous port a SLURM job uses when MASTER_PORT is not set: 15000 + job_id % 20000.
int slurm_default_port(int64_t job_id);

}  // namespace strata::parallel
