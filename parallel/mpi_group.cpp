#include "parallel/mpi_group.hpp"

#include <mpi.h>

#include <functional>
#include <mutex>
#include <thread>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"

namespace strata::parallel {
namespace {

std::mutex& mpi_mutex() {
  static std::mutex m;
  return m;
}
bool g_started = false;

void ensure_init() {
  std::lock_guard<std::mutex> lock(mpi_mutex());
  if (g_started) return;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
      fail("MPI_Init_thread failed (is this process started by mpirun?)");
    if (provided < MPI_THREAD_SERIALIZED) fail("MPI provides thread level {}, Strata needs MPI_THREAD_SERIALIZED", provided);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  g_started = true;
}

std::string mpi_error(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, buf, &len);
  return std::string(buf, len);
}

MPI_Datatype datatype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kInt: return MPI_INT32_T;
    case at::kLong: return MPI_INT64_T;
    case at::kByte: return MPI_UINT8_T;
    case at::kChar: return MPI_INT8_T;
    default: return MPI_DATATYPE_NULL;
  }
}

class MpiGroup;

class MpiWork final : public Work {
 public:
  MpiWork(MPI_Request req, std::string op, const MpiGroup* g, std::vector<at::Tensor> keep, std::function<void()> then)
      : req_(req), op_(std::move(op)), group_(g), keep_(std::move(keep)), then_(std::move(then)) {}
  void wait() override;

 private:
  MPI_Request req_;
  std::string op_;
  const MpiGroup* group_;
  std::vector<at::Tensor> keep_;  // buffers MPI reads or writes until completion
  std::function<void()> then_;
  bool done_ = false;
};

class MpiGroup final : public ProcessGroup {
 public:
  MpiGroup(MPI_Comm comm, std::string name, std::chrono::milliseconds timeout)
      : comm_(comm), name_(std::move(name)), timeout_(timeout) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }
  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }
  std::string name() const override { return name_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  [[noreturn]] void failed(const std::string& op, const std::string& why) const {
    fail("{} on process group {} (mpi, group rank {} of {}, world rank {}) failed: {}", op, name_, rank_, size_,
         world_rank_, why);
  }

  std::shared_ptr<Work> all_reduce(at::Tensor& t, ReduceOp op) override {
    auto dt = check(t, "all_reduce");
    return start("all_reduce", {t}, average_after(op, t), [&](MPI_Request* r) {
      return MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), dt, to_mpi(op), comm_, r);
    });
  }
  std::shared_ptr<Work> broadcast(at::Tensor& t, int64_t root) override {
    auto dt = check(t, "broadcast");
    check_peer(root, "broadcast");
    return start("broadcast", {t}, {}, [&](MPI_Request* r) {
      return MPI_Ibcast(t.data_ptr(), static_cast<int>(t.numel()), dt, static_cast<int>(root), comm_, r);
    });
  }
  std::shared_ptr<Work> all_gather(std::vector<at::Tensor>& out, const at::Tensor& in) override {
    check(in, "all_gather");
    if (static_cast<int64_t>(out.size()) != size_) failed("all_gather", fmt::format("{} output tensors for {} ranks", out.size(), size_));
    auto flat = at::empty({size_ * in.numel()}, in.options());
    auto work = all_gather_flat(flat, in);
    auto outs = out;
    const int64_t n = in.numel();
    return std::make_shared<ChainWork>(work, [outs, flat, n]() mutable {
      for (size_t i = 0; i < outs.size(); ++i) outs[i].copy_(flat.narrow(0, i * n, n).view(outs[i].sizes()));
    });
  }
  std::shared_ptr<Work> all_gather_flat(at::Tensor& out, const at::Tensor& in) override {
    auto dt = check(in, "all_gather_flat");
    check(out, "all_gather_flat");
    if (out.numel() != in.numel() * size_)
      failed("all_gather_flat", fmt::format("output has {} elements, expected {} x {}", out.numel(), size_, in.numel()));
    return start("all_gather_flat", {out, in}, {}, [&](MPI_Request* r) {
      return MPI_Iallgather(in.data_ptr(), static_cast<int>(in.numel()), dt, out.data_ptr(), static_cast<int>(in.numel()), dt,
                            comm_, r);
    });
  }
  std::shared_ptr<Work> reduce_scatter_flat(at::Tensor& out, const at::Tensor& in, ReduceOp op) override {
    auto dt = check(in, "reduce_scatter_flat");
    check(out, "reduce_scatter_flat");
    if (in.numel() != out.numel() * size_)
      failed("reduce_scatter_flat", fmt::format("input has {} elements, expected {} x {}", in.numel(), size_, out.numel()));
    return start("reduce_scatter_flat", {out, in}, average_after(op, out), [&](MPI_Request* r) {
      return MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), static_cast<int>(out.numel()), dt, to_mpi(op), comm_, r);
    });
  }
  std::shared_ptr<Work> send(const at::Tensor& t, int64_t dst, int64_t tag) override {
    auto dt = check(t, "send");
    check_peer(dst, "send");
    return start(fmt::format("send to rank {}", dst), {t}, {}, [&](MPI_Request* r) {
      return MPI_Isend(t.data_ptr(), static_cast<int>(t.numel()), dt, static_cast<int>(dst), static_cast<int>(tag), comm_, r);
    });
  }
  std::shared_ptr<Work> recv(at::Tensor& t, int64_t src, int64_t tag) override {
    auto dt = check(t, "recv");
    check_peer(src, "recv");
    return start(fmt::format("recv from rank {}", src), {t}, {}, [&](MPI_Request* r) {
      return MPI_Irecv(t.data_ptr(), static_cast<int>(t.numel()), dt, static_cast<int>(src), static_cast<int>(tag), comm_, r);
    });
  }
  void barrier() override {
    start("barrier", {}, {}, [&](MPI_Request* r) { return MPI_Ibarrier(comm_, r); })->wait();
  }

 private:
  // Waits for an inner Work, then runs a completion step (all_gather's copy-out).
  class ChainWork final : public Work {
   public:
    ChainWork(std::shared_ptr<Work> inner, std::function<void()> then) : inner_(std::move(inner)), then_(std::move(then)) {}
    void wait() override {
      if (done_) return;
      inner_->wait();
      then_();
      done_ = true;
    }

   private:
    std::shared_ptr<Work> inner_;
    std::function<void()> then_;
    bool done_ = false;
  };

  static MPI_Op to_mpi(ReduceOp op) {
    switch (op) {
      case ReduceOp::Sum:
      case ReduceOp::Avg: return MPI_SUM;
      case ReduceOp::Max: return MPI_MAX;
      case ReduceOp::Min: return MPI_MIN;
    }
    return MPI_SUM;
  }
  std::function<void()> average_after(ReduceOp op, at::Tensor t) const {
    if (op != ReduceOp::Avg) return {};
    const double n = size_;
    return [t, n]() mutable { t.div_(n); };
  }
  MPI_Datatype check(const at::Tensor& t, const char* op) const {
    if (!t.defined()) failed(op, "undefined tensor");
    if (!t.device().is_cpu()) failed(op, fmt::format("the MPI backend takes CPU tensors, got {}", t.device().str()));
    if (!t.is_contiguous()) failed(op, "the tensor is not contiguous");
    if (t.numel() > std::numeric_limits<int>::max()) failed(op, fmt::format("{} elements exceed MPI's int count", t.numel()));
    auto dt = datatype_of(t);
    if (dt == MPI_DATATYPE_NULL) failed(op, fmt::format("dtype {} has no MPI datatype here", c10::toString(t.scalar_type())));
    return dt;
  }
  void check_peer(int64_t r, const char* op) const {
    if (r < 0 || r >= size_) failed(op, fmt::format("peer rank {} is outside the group of {}", r, size_));
  }
  template <typename F>
  std::shared_ptr<Work> start(const std::string& op, std::vector<at::Tensor> keep, std::function<void()> then, F&& post) {
    MPI_Request req = MPI_REQUEST_NULL;
    int rc;
    {
      std::lock_guard<std::mutex> lock(mpi_mutex());
      rc = post(&req);
    }
    if (rc != MPI_SUCCESS) failed(op, mpi_error(rc));
    return std::make_shared<MpiWork>(req, op, this, std::move(keep), std::move(then));
  }

  MPI_Comm comm_;
  std::string name_;
  std::chrono::milliseconds timeout_;
  int rank_ = 0, size_ = 1, world_rank_ = 0;
};

void MpiWork::wait() {
  if (done_) return;
  const auto deadline = std::chrono::steady_clock::now() + group_->timeout();
  for (int spins = 0;; ++spins) {
    int flag = 0, rc;
    {
      std::lock_guard<std::mutex> lock(mpi_mutex());
      rc = MPI_Test(&req_, &flag, MPI_STATUS_IGNORE);
    }
    if (rc != MPI_SUCCESS) group_->failed(op_, mpi_error(rc));
    if (flag) break;
    if (std::chrono::steady_clock::now() > deadline)
      group_->failed(op_, fmt::format("timed out after {} s (parallel.timeout_s); a peer rank may have stopped",
                                      group_->timeout().count() / 1000.0));
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  done_ = true;
  if (then_) then_();
}

}  // namespace

bool mpi_initialized() { return g_started; }

std::shared_ptr<ProcessGroup> mpi_world_group(std::chrono::milliseconds timeout) {
  ensure_init();
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  int n = 0;
  MPI_Comm_size(dup, &n);
  std::string name = fmt::format("world[0..{}]", n - 1);
  return std::make_shared<MpiGroup>(dup, name, timeout);
}

std::shared_ptr<ProcessGroup> mpi_split(const std::vector<std::vector<int64_t>>& partition, const std::string& name,
                                        std::chrono::milliseconds timeout) {
  ensure_init();
  int me = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  int color = -1, key = 0;
  for (size_t g = 0; g < partition.size(); ++g)
    for (size_t k = 0; k < partition[g].size(); ++k)
      if (partition[g][k] == me) color = static_cast<int>(g), key = static_cast<int>(k);
  if (color < 0) fail("process group '{}': world rank {} is in none of the groups", name, me);
  MPI_Comm comm;
  int rc;
  {
    std::lock_guard<std::mutex> lock(mpi_mutex());
    rc = MPI_Comm_split(MPI_COMM_WORLD, color, key, &comm);
  }
  if (rc != MPI_SUCCESS) fail("MPI_Comm_split for process group '{}' failed at world rank {}: {}", name, me, mpi_error(rc));
  return std::make_shared<MpiGroup>(comm, fmt::format("{}[{}]", name, fmt::join(partition[color], ",")), timeout);
}

void mpi_shutdown(bool ok) {
  if (!g_started) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (ok) {
    MPI_Finalize();
  } else {
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

}  // namespace strata::parallel
