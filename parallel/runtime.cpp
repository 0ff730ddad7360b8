#include "parallel/runtime.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "core/error.hpp"
#include "parallel/backends.hpp"
#include "parallel/mpi_group.hpp"

namespace strata::parallel {
namespace {

std::string group_name(const std::string& name, const std::vector<int64_t>& ranks) {
  return fmt::format("{}[{}]", name, fmt::join(ranks, ","));
}

class SingleRuntime final : public Runtime {
 public:
  SingleRuntime(const World& w, const RuntimeOptions& o) {
    world_ = w;
    backend_ = "single";
    timeout_ = o.timeout;
    world_group_ = make_single_rank_group("world[0]");
  }
  std::shared_ptr<ProcessGroup> split(const std::vector<std::vector<int64_t>>& partition, const std::string& name) override {
    size_t g = group_index_of(partition, 1, 0, name);
    return make_single_rank_group(group_name(name, partition[g]));
  }
};

class C10dRuntime final : public Runtime {
 public:
  C10dRuntime(const World& w, const RuntimeOptions& o, std::string kind) {
    world_ = w;
    backend_ = std::move(kind);
    timeout_ = o.timeout;
    if (w.master_addr.empty())
      fail("{} launch with parallel.backend = {} needs MASTER_ADDR and MASTER_PORT for the rendezvous store "
           "(with mpirun: -x MASTER_ADDR=<rank 0 host> -x MASTER_PORT=<port>, or use parallel.backend = mpi)",
           w.launcher, backend_);
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(w.master_port);
    so.isServer = !w.agent_store && w.rank == 0;
    so.numWorkers = w.agent_store ? std::nullopt : std::optional<std::size_t>(w.size);
    so.waitWorkers = false;
    so.timeout = o.timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(w.master_addr, so);
    } catch (const std::exception& e) {
      std::string why = dynamic_cast<const c10::Error*>(&e) ? static_cast<const c10::Error&>(e).what_without_backtrace() : e.what();
      fail("rank {}: cannot {} the rendezvous store at {}:{} ({} launch): {}", w.rank, so.isServer ? "serve" : "reach",
           w.master_addr, w.master_port, w.launcher, why);
    }
    if (w.agent_store) store_ = c10::make_intrusive<c10d::PrefixStore>(w.store_prefix, store_);
    store_ = c10::make_intrusive<c10d::PrefixStore>("strata", store_);
    if (backend_ == "nccl") device_index_ = static_cast<int>(w.local_rank % std::max<int64_t>(1, at::getNumGPUs()));
    std::vector<int64_t> all(w.size);
    for (int64_t r = 0; r < w.size; ++r) all[r] = r;
    world_group_ = make_group(all, "world");
  }

  std::shared_ptr<ProcessGroup> split(const std::vector<std::vector<int64_t>>& partition, const std::string& name) override {
    size_t g = group_index_of(partition, world_.size, world_.rank, name);
    return make_group(partition[g], name);
  }

 private:
  std::shared_ptr<ProcessGroup> make_group(const std::vector<int64_t>& ranks, const std::string& name) {
    const std::string full = group_name(name, ranks);
    if (ranks.size() == 1) return make_single_rank_group(full);
    int me = -1;
    for (size_t k = 0; k < ranks.size(); ++k)
      if (ranks[k] == world_.rank) me = static_cast<int>(k);
    auto store = c10::make_intrusive<c10d::PrefixStore>(full, store_);
    c10::intrusive_ptr<c10d::Backend> b;
    try {
      b = backend_ == "nccl" ? make_nccl_backend(store, me, static_cast<int>(ranks.size()), timeout_, device_index_)
                             : make_gloo_backend(store, me, static_cast<int>(ranks.size()), timeout_);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      std::string why = dynamic_cast<const c10::Error*>(&e) ? static_cast<const c10::Error&>(e).what_without_backtrace() : e.what();
      fail("world rank {}: creating {} process group {} failed (peers missing or unreachable within parallel.timeout_s = {} s?): {}",
           world_.rank, backend_, full, timeout_.count() / 1000.0, why);
    }
    return wrap_c10d(b, full, backend_, world_.rank, timeout_, store);
  }

  c10::intrusive_ptr<c10d::Store> store_;
  int device_index_ = 0;
};

class MpiRuntime final : public Runtime {
 public:
  MpiRuntime(const World& w, const RuntimeOptions& o) {
    world_ = w;
    backend_ = "mpi";
    timeout_ = o.timeout;
    world_group_ = mpi_world_group(o.timeout);
    if (world_group_->size() != w.size || world_group_->rank() != w.rank)
      fail("MPI reports rank {} of {} but the environment says rank {} of {}", world_group_->rank(), world_group_->size(),
           w.rank, w.size);
  }
  std::shared_ptr<ProcessGroup> split(const std::vector<std::vector<int64_t>>& partition, const std::string& name) override {
    group_index_of(partition, world_.size, world_.rank, name);
    return mpi_split(partition, name, timeout_);
  }
  void shutdown(bool ok) override { mpi_shutdown(ok); }
};

}  // namespace

size_t group_index_of(const std::vector<std::vector<int64_t>>& partition, int64_t world_size, int64_t rank,
                      const std::string& name) {
  std::vector<int> seen(world_size, 0);
  size_t mine = partition.size();
  for (size_t g = 0; g < partition.size(); ++g)
    for (int64_t r : partition[g]) {
      if (r < 0 || r >= world_size) fail("process groups '{}': rank {} is outside the world of {}", name, r, world_size);
      if (seen[r]++) fail("process groups '{}': rank {} appears in more than one group", name, r);
      if (r == rank) mine = g;
    }
  for (int64_t r = 0; r < world_size; ++r)
    if (!seen[r]) fail("process groups '{}': rank {} is in no group", name, r);
  return mine;
}

void shutdown_runtime(bool ok) { mpi_shutdown(ok); }

std::shared_ptr<Runtime> Runtime::init(const World& world, const RuntimeOptions& opts) {
  std::shared_ptr<Runtime> rt;
  std::string kind = opts.backend;
  if (kind == "auto") kind = world.size == 1 ? "single" : world.launcher == "mpi" ? "mpi" : opts.cuda ? "nccl" : "gloo";
  if (kind == "nccl" && !opts.cuda) fail("parallel.backend = nccl needs train.device = cuda (NCCL reduces CUDA tensors)");
  if (kind == "gloo" && opts.cuda) fail("parallel.backend = gloo takes CPU tensors but training runs on CUDA; use nccl or auto");
  if (kind == "mpi" && opts.cuda) fail("parallel.backend = mpi takes CPU tensors but training runs on CUDA; use nccl or auto");
  if (world.size == 1 && kind != "mpi") {
    rt = std::make_shared<SingleRuntime>(world, opts);
  } else if (kind == "mpi") {
    rt = std::make_shared<MpiRuntime>(world, opts);
  } else if (kind == "gloo" || kind == "nccl") {
    rt = std::make_shared<C10dRuntime>(world, opts, kind);
  } else {
    fail("parallel.backend = '{}' is not one of: auto, gloo, nccl, mpi", opts.backend);
  }
  if (world.size > 1) {
    // Everyone agrees on the world before training starts (and a missing rank shows up here).
    rt->world_group()->barrier();
    spdlog::info("world: {}; backend {}, timeout {} s", world.describe(), rt->backend(), opts.timeout.count() / 1000.0);
  }
  return rt;
}

}  // namespace strata::parallel
