#include "parallel/world.hpp"

#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "core/error.hpp"

namespace strata::parallel {
namespace {

struct Env {
  const EnvLookup& get;
  bool has(const char* name) const {
    const char* v = get(name);
    return v && *v;
  }
  std::string str(const char* name, const std::string& fallback = "") const {
    const char* v = get(name);
    return v && *v ? std::string(v) : fallback;
  }
  int64_t integer(const char* name, int64_t fallback) const {
    const char* v = get(name);
    if (!v || !*v) return fallback;
    size_t used = 0;
    int64_t x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || v[used] != '\0') fail("environment variable {}='{}' is not an integer", name, v);
    return x;
  }
  int64_t required(const char* name, const char* launcher) const {
    if (!has(name)) fail("{} launch detected but {} is not set", launcher, name);
    return integer(name, 0);
  }
};

int port_of(const Env& e, const char* name, int fallback) {
  int64_t p = e.integer(name, fallback);
  if (p < 0 || p > 65535) fail("environment variable {}={} is not a TCP port", name, p);
  return static_cast<int>(p);
}

World from_torchrun(const Env& e) {
  World w;
  w.launcher = "torchrun";
  w.rank = e.required("RANK", "torchrun");
  w.size = e.required("WORLD_SIZE", "torchrun");
  w.local_rank = e.integer("LOCAL_RANK", 0);
  w.local_size = e.integer("LOCAL_WORLD_SIZE", 1);
  w.master_addr = e.str("MASTER_ADDR", "127.0.0.1");
  w.master_port = port_of(e, "MASTER_PORT", 29500);
  std::string agent = e.str("TORCHELASTIC_USE_AGENT_STORE");
  w.agent_store = agent == "True" || agent == "true" || agent == "1";
  if (w.agent_store) w.store_prefix = "/worker/attempt_" + std::to_string(e.integer("TORCHELASTIC_RESTART_COUNT", 0));
  return w;
}

World from_slurm(const Env& e) {
  World w;
  w.launcher = "slurm";
  w.rank = e.required("SLURM_PROCID", "SLURM");
  w.size = e.required("SLURM_NTASKS", "SLURM");
  w.local_rank = e.integer("SLURM_LOCALID", 0);
  const int64_t node = e.integer("SLURM_NODEID", 0);
  std::string per_node = e.str("SLURM_STEP_TASKS_PER_NODE", e.str("SLURM_TASKS_PER_NODE"));
  if (!per_node.empty()) {
    auto counts = expand_tasks_per_node(per_node);
    if (node < 0 || node >= static_cast<int64_t>(counts.size()))
      fail("SLURM_NODEID={} but SLURM_STEP_TASKS_PER_NODE='{}' lists {} nodes", node, per_node, counts.size());
    w.local_size = counts[node];
  } else {
    w.local_size = e.integer("SLURM_NTASKS_PER_NODE", 1);
  }
  if (e.has("MASTER_ADDR")) {
    w.master_addr = e.str("MASTER_ADDR");
  } else {
    std::string list = e.str("SLURM_STEP_NODELIST", e.str("SLURM_JOB_NODELIST", e.str("SLURM_NODELIST")));
    if (list.empty()) fail("SLURM launch detected but neither SLURM_JOB_NODELIST nor MASTER_ADDR is set");
    w.master_addr = expand_nodelist(list).at(0);
  }
  if (e.has("MASTER_PORT")) {
    w.master_port = port_of(e, "MASTER_PORT", 0);
  } else {
    w.master_port = slurm_default_port(e.integer("SLURM_JOB_ID", e.integer("SLURM_JOBID", 0)));
  }
  return w;
}

World from_mpi(const Env& e) {
  World w;
  w.launcher = "mpi";
  if (e.has("OMPI_COMM_WORLD_RANK")) {
    w.rank = e.integer("OMPI_COMM_WORLD_RANK", 0);
    w.size = e.required("OMPI_COMM_WORLD_SIZE", "OpenMPI");
    w.local_rank = e.integer("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    w.local_size = e.integer("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
  } else {  // MPICH / Intel MPI / PMI
    w.rank = e.integer("PMI_RANK", 0);
    w.size = e.required("PMI_SIZE", "PMI");
    w.local_rank = e.integer("MPI_LOCALRANKID", e.integer("PMI_LOCAL_RANK", 0));
    w.local_size = e.integer("MPI_LOCALNRANKS", e.integer("PMI_LOCAL_SIZE", 1));
  }
  w.master_addr = e.str("MASTER_ADDR");
  w.master_port = port_of(e, "MASTER_PORT", 29500);
  return w;
}

}  // namespace

std::string World::describe() const {
  std::string s = fmt::format("{} launch: rank {} of {}, local rank {} of {}", launcher, rank, size, local_rank, local_size);
  if (!master_addr.empty()) s += fmt::format(", store {}:{}", master_addr, master_port);
  if (agent_store) s += fmt::format(" (torchrun agent store, prefix {})", store_prefix);
  return s;
}

World world_from_env(const EnvLookup& get) {
  Env e{get};
  World w;
  if (e.has("RANK") && e.has("WORLD_SIZE")) {
    w = from_torchrun(e);
  } else if (e.has("SLURM_PROCID") && e.has("SLURM_NTASKS") && e.has("SLURM_STEP_ID")) {
    w = from_slurm(e);  // srun sets SLURM_STEP_ID; a bare sbatch shell is not a task of a step
  } else if (e.has("OMPI_COMM_WORLD_RANK") || e.has("PMI_RANK")) {
    w = from_mpi(e);
  }
  if (w.size < 1) fail("{} launch: world size {} is not positive", w.launcher, w.size);
  if (w.rank < 0 || w.rank >= w.size) fail("{} launch: rank {} is outside a world of {}", w.launcher, w.rank, w.size);
  if (w.local_size < 1 || w.local_rank < 0 || w.local_rank >= w.local_size)
    fail("{} launch: local rank {} is outside a node of {} processes", w.launcher, w.local_rank, w.local_size);
  return w;
}

World world_from_env() {
  return world_from_env(EnvLookup([](const char* n) -> const char* { return std::getenv(n); }));
}

World world_from_env(const std::map<std::string, std::string>& vars) {
  return world_from_env(EnvLookup([&](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  }));
}

std::vector<std::string> expand_nodelist(const std::string& list) {
  std::vector<std::string> out;
  size_t i = 0;
  auto bad = [&](const char* why) -> void { fail("SLURM node list '{}': {} at character {}", list, why, i); };
  while (i < list.size()) {
    // One host expression: prefix, optionally [ranges], then more text, until a top-level comma.
    std::string prefix;
    while (i < list.size() && list[i] != ',' && list[i] != '[') prefix += list[i++];
    if (i < list.size() && list[i] == '[') {
      size_t close = list.find(']', i);
      if (close == std::string::npos) bad("unclosed '['");
      std::string body = list.substr(i + 1, close - i - 1);
      i = close + 1;
      std::string suffix;
      while (i < list.size() && list[i] != ',') {
        if (list[i] == '[') bad("more than one bracket range in one host name");
        suffix += list[i++];
      }
      size_t p = 0;
      while (p <= body.size()) {
        size_t comma = body.find(',', p);
        std::string range = body.substr(p, comma == std::string::npos ? std::string::npos : comma - p);
        p = comma == std::string::npos ? body.size() + 1 : comma + 1;
        if (range.empty()) bad("empty range");
        size_t dash = range.find('-');
        std::string lo = range.substr(0, dash), hi = dash == std::string::npos ? lo : range.substr(dash + 1);
        if (lo.empty() || hi.empty() || lo.find_first_not_of("0123456789") != std::string::npos ||
            hi.find_first_not_of("0123456789") != std::string::npos)
          bad("a range is not digits or digits-digits");
        int64_t a = std::stoll(lo), b = std::stoll(hi);
        if (b < a) bad("a range runs backwards");
        for (int64_t k = a; k <= b; ++k) out.push_back(fmt::format("{}{:0{}}{}", prefix, k, lo.size(), suffix));
      }
    } else {
      if (prefix.empty()) bad("empty host name");
      out.push_back(prefix);
    }
    if (i < list.size()) {
      ++i;  // the comma
      if (i == list.size()) bad("trailing comma");
    }
  }
  if (out.empty()) fail("SLURM node list '{}' names no host", list);
  return out;
}

std::vector<int64_t> expand_tasks_per_node(const std::string& spec) {
  std::vector<int64_t> out;
  size_t p = 0;
  while (p < spec.size()) {
    size_t comma = spec.find(',', p);
    std::string item = spec.substr(p, comma == std::string::npos ? std::string::npos : comma - p);
    p = comma == std::string::npos ? spec.size() : comma + 1;
    size_t paren = item.find("(x");
    try {
      size_t used = 0;
      int64_t n = std::stoll(item, &used);
      int64_t rep = 1;
      if (paren != std::string::npos) {
        if (used != paren || item.back() != ')') throw std::invalid_argument(item);
        rep = std::stoll(item.substr(paren + 2, item.size() - paren - 3));
      } else if (used != item.size()) {
        throw std::invalid_argument(item);
      }
      if (n < 1 || rep < 1) throw std::invalid_argument(item);
      out.insert(out.end(), rep, n);
    } catch (const std::exception&) {
      fail("SLURM tasks-per-node '{}': cannot read '{}' (expected N or N(xR))", spec, item);
    }
  }
  if (out.empty()) fail("SLURM tasks-per-node '{}' is empty", spec);
  return out;
}

int slurm_default_port(int64_t job_id) { return static_cast<int>(15000 + (job_id % 20000 + 20000) % 20000); }

}  // namespace strata::parallel
