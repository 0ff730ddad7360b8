#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "parallel/world.hpp"

using namespace strata;
using namespace strata::parallel;

TEST_CASE("no launcher variables: one process") {
  auto w = world_from_env(std::map<std::string, std::string>{});
  CHECK(w.launcher == "single");
  CHECK(w.rank == 0);
  CHECK(w.size == 1);
}

TEST_CASE("torchrun variables, with and without the agent store") {
  std::map<std::string, std::string> env = {{"RANK", "3"},          {"WORLD_SIZE", "8"},       {"LOCAL_RANK", "1"},
                                            {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.5"}, {"MASTER_PORT", "29511"},
                                            {"TORCHELASTIC_RESTART_COUNT", "2"}, {"SLURM_PROCID", "7"}, {"SLURM_NTASKS", "9"},
                                            {"SLURM_STEP_ID", "0"}};
  auto w = world_from_env(env);
  CHECK(w.launcher == "torchrun");  // torchrun wins over SLURM variables
  CHECK(w.rank == 3);
  CHECK(w.size == 8);
  CHECK(w.local_rank == 1);
  CHECK(w.local_size == 2);
  CHECK(w.master_addr == "10.0.0.5");
  CHECK(w.master_port == 29511);
  CHECK_FALSE(w.agent_store);
  env["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  w = world_from_env(env);
  CHECK(w.agent_store);
  CHECK(w.store_prefix == "/worker/attempt_2");
  env["RANK"] = "8";
  CHECK_THROWS_WITH(world_from_env(env), Catch::Contains("rank 8 is outside a world of 8"));
  env["RANK"] = "x1";
  CHECK_THROWS_WITH(world_from_env(env), Catch::Contains("RANK='x1' is not an integer"));
}

TEST_CASE("SLURM node lists expand bracket ranges") {
  CHECK(expand_nodelist("node1") == std::vector<std::string>{"node1"});
  // Zero padding is each range's own (as scontrol show hostnames does).
  CHECK(expand_nodelist("node[01-03,7]") == std::vector<std::string>{"node01", "node02", "node03", "node7"});
  CHECK(expand_nodelist("a[9-10]b,gpu-x,c[3]") == std::vector<std::string>{"a9b", "a10b", "gpu-x", "c3"});
  CHECK(expand_nodelist("n[098-101]") == std::vector<std::string>{"n098", "n099", "n100", "n101"});
  CHECK_THROWS_WITH(expand_nodelist("n[1-3"), Catch::Contains("unclosed"));
  CHECK_THROWS_WITH(expand_nodelist("n[3-1]"), Catch::Contains("backwards"));
  CHECK_THROWS_WITH(expand_nodelist("n[a-b]"), Catch::Contains("not digits"));
  CHECK_THROWS_WITH(expand_nodelist("n1,"), Catch::Contains("trailing comma"));
}

TEST_CASE("SLURM tasks per node") {
  CHECK(expand_tasks_per_node("4") == std::vector<int64_t>{4});
  CHECK(expand_tasks_per_node("2(x3),1") == std::vector<int64_t>{2, 2, 2, 1});
  CHECK_THROWS_WITH(expand_tasks_per_node("2(x3"), Catch::Contains("cannot read"));
}

TEST_CASE("SLURM variables: master is the first node, port from the job id") {
  std::map<std::string, std::string> env = {{"SLURM_PROCID", "5"},        {"SLURM_NTASKS", "6"},
                                            {"SLURM_LOCALID", "1"},       {"SLURM_NODEID", "2"},
                                            {"SLURM_STEP_ID", "0"},       {"SLURM_STEP_TASKS_PER_NODE", "2(x3)"},
                                            {"SLURM_JOB_NODELIST", "gpu[07-09]"}, {"SLURM_JOB_ID", "123456"}};
  auto w = world_from_env(env);
  CHECK(w.launcher == "slurm");
  CHECK(w.rank == 5);
  CHECK(w.size == 6);
  CHECK(w.local_rank == 1);
  CHECK(w.local_size == 2);
  CHECK(w.master_addr == "gpu07");
  CHECK(w.master_port == 15000 + 123456 % 20000);
  env["MASTER_PORT"] = "4242";
  CHECK(world_from_env(env).master_port == 4242);
  env["SLURM_NODEID"] = "3";
  CHECK_THROWS_WITH(world_from_env(env), Catch::Contains("lists 3 nodes"));
  env.erase("SLURM_STEP_ID");  // a batch script's shell, not an srun task: one process
  CHECK(world_from_env(env).launcher == "single");
}

TEST_CASE("OpenMPI and PMI variables") {
  auto w = world_from_env(std::map<std::string, std::string>{{"OMPI_COMM_WORLD_RANK", "2"},
                                                              {"OMPI_COMM_WORLD_SIZE", "4"},
                                                              {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                                                              {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  CHECK(w.launcher == "mpi");
  CHECK(w.rank == 2);
  CHECK(w.size == 4);
  CHECK(w.local_size == 2);
  CHECK(w.master_addr.empty());
  auto p = world_from_env(std::map<std::string, std::string>{{"PMI_RANK", "1"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "1"},
                                                              {"MPI_LOCALNRANKS", "3"}});
  CHECK(p.launcher == "mpi");
  CHECK(p.rank == 1);
  CHECK(p.size == 3);
  CHECK(p.local_rank == 1);
  CHECK_THROWS_WITH(world_from_env(std::map<std::string, std::string>{{"PMI_RANK", "1"}}), Catch::Contains("PMI_SIZE"));
}
