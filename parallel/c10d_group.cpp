// parallel::ProcessGroup over a c10d::Backend (Gloo or NCCL).
#include <cstdlib>
#include <functional>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "core/error.hpp"
#include "parallel/backends.hpp"
#include "parallel/hang_report.hpp"

namespace strata::parallel {
namespace {

// c10d's flight recorder (FlightRecorderDetail.hpp, torch 2.11) registers a group's status in a
// process-wide std::map on the group's first collective *before* taking its lock, so two threads
// whose groups record their first collective at the same time corrupt the map: ranks-as-threads tests
// crashed there (SIGSEGV in _Rb_tree_insert_and_rebalance under recordWithResetEnabled, about 1 run
// in 10 of test_optim), and a real process can run collectives of several groups from several
// threads. Strata reports hangs itself (parallel/hang_report), so the recorder is off unless the
// user asks for it: set at load time, before any thread exists and before the recorder reads it.
const bool kFlightRecorderDefaultOff = [] {
  setenv("TORCH_FR_BUFFER_SIZE", "0", /*overwrite=*/0);  // keeps a value the user set
  return true;
}();

std::string what_of(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

class C10dGroup;

class C10dWork final : public Work {
 public:
  C10dWork(c10::intrusive_ptr<c10d::Work> w, std::string op, int64_t seq, const C10dGroup* g, std::function<void()> then)
      : w_(std::move(w)), op_(std::move(op)), seq_(seq), group_(g), then_(std::move(then)) {}
  void wait() override;

 private:
  c10::intrusive_ptr<c10d::Work> w_;
  std::string op_;
  int64_t seq_;  // the group's collective sequence number; -1 for point-to-point
  const C10dGroup* group_;
  std::function<void()> then_;
  bool done_ = false;
};

class C10dGroup final : public ProcessGroup, public std::enable_shared_from_this<C10dGroup> {
 public:
  C10dGroup(c10::intrusive_ptr<c10d::Backend> b, std::string name, std::string kind, int64_t world_rank,
            std::chrono::milliseconds timeout, c10::intrusive_ptr<c10d::Store> diag)
      : b_(std::move(b)), name_(std::move(name)), kind_(std::move(kind)), world_rank_(world_rank), timeout_(timeout),
        diag_(std::move(diag)) {}

  int64_t rank() const override { return b_->getRank(); }
  int64_t size() const override { return b_->getSize(); }
  std::string name() const override { return name_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  int64_t world_rank() const { return world_rank_; }
  const std::string& kind() const { return kind_; }

  // After collective number `seq` timed out: which ranks of the group reached it (via the store).
  std::string who_reached(const std::string& op, int64_t seq) const {
    if (seq < 0 || !diag_) return "";
    return " " + report_hang_through_store(*diag_, op, seq, rank(), size(), timeout_);
  }

  [[noreturn]] void failed(const std::string& op, const std::string& why) const {
    fail("{} on process group {} ({}, group rank {} of {}, world rank {}) failed: {}", op, name_, kind_, rank(), size(),
         world_rank_, why);
  }

  std::shared_ptr<Work> all_reduce(at::Tensor& t, ReduceOp op) override {
    check(t, "all_reduce");
    c10d::AllreduceOptions o;
    o.reduceOp = to_c10d(op);
    o.timeout = timeout_;
    std::vector<at::Tensor> v{t};
    return launch("all_reduce", [&] { return b_->allreduce(v, o); }, average_after(op, t));
  }
  std::shared_ptr<Work> broadcast(at::Tensor& t, int64_t root) override {
    check(t, "broadcast");
    check_peer(root, "broadcast");
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = timeout_;
    std::vector<at::Tensor> v{t};
    return launch("broadcast", [&] { return b_->broadcast(v, o); });
  }
  std::shared_ptr<Work> all_gather(std::vector<at::Tensor>& out, const at::Tensor& in) override {
    check(in, "all_gather");
    if (static_cast<int64_t>(out.size()) != size()) failed("all_gather", fmt::format("{} output tensors for {} ranks", out.size(), size()));
    c10d::AllgatherOptions o;
    o.timeout = timeout_;
    std::vector<std::vector<at::Tensor>> outs{out};
    std::vector<at::Tensor> ins{in};
    return launch("all_gather", [&] { return b_->allgather(outs, ins, o); });
  }
  std::shared_ptr<Work> all_gather_flat(at::Tensor& out, const at::Tensor& in) override {
    check(in, "all_gather_flat");
    check(out, "all_gather_flat");
    if (out.numel() != in.numel() * size())
      failed("all_gather_flat", fmt::format("output has {} elements, expected {} x {}", out.numel(), size(), in.numel()));
    c10d::AllgatherOptions o;
    o.timeout = timeout_;
    at::Tensor i = in;
    return launch("all_gather_flat", [&] { return b_->_allgather_base(out, i, o); });
  }
  std::shared_ptr<Work> reduce_scatter_flat(at::Tensor& out, const at::Tensor& in, ReduceOp op) override {
    check(in, "reduce_scatter_flat");
    check(out, "reduce_scatter_flat");
    if (in.numel() != out.numel() * size())
      failed("reduce_scatter_flat", fmt::format("input has {} elements, expected {} x {}", in.numel(), size(), out.numel()));
    c10d::ReduceScatterOptions o;
    o.reduceOp = to_c10d(op);
    o.timeout = timeout_;
    at::Tensor i = in;
    return launch("reduce_scatter_flat", [&] { return b_->_reduce_scatter_base(out, i, o); }, average_after(op, out));
  }
  std::shared_ptr<Work> send(const at::Tensor& t, int64_t dst, int64_t tag) override {
    check(t, "send");
    check_peer(dst, "send");
    std::vector<at::Tensor> v{t};
    return launch(fmt::format("send to rank {}", dst), [&] { return b_->send(v, static_cast<int>(dst), static_cast<int>(tag)); });
  }
  std::shared_ptr<Work> recv(at::Tensor& t, int64_t src, int64_t tag) override {
    check(t, "recv");
    check_peer(src, "recv");
    std::vector<at::Tensor> v{t};
    return launch(fmt::format("recv from rank {}", src), [&] { return b_->recv(v, static_cast<int>(src), static_cast<int>(tag)); });
  }
  void barrier() override {
    c10d::BarrierOptions o;
    o.timeout = timeout_;
    launch("barrier", [&] { return b_->barrier(o); })->wait();
  }

 private:
  // Sum then divide: Gloo has no AVG, and one rule for every backend keeps results identical.
  static c10d::ReduceOp to_c10d(ReduceOp op) {
    switch (op) {
      case ReduceOp::Sum:
      case ReduceOp::Avg: return c10d::ReduceOp::SUM;
      case ReduceOp::Max: return c10d::ReduceOp::MAX;
      case ReduceOp::Min: return c10d::ReduceOp::MIN;
    }
    return c10d::ReduceOp::SUM;
  }
  std::function<void()> average_after(ReduceOp op, at::Tensor t) const {
    if (op != ReduceOp::Avg) return {};
    const double n = static_cast<double>(size());
    return [t, n]() mutable { t.div_(n); };
  }
  void check(const at::Tensor& t, const char* op) const {
    if (!t.defined()) failed(op, "undefined tensor");
    if (!t.is_contiguous()) failed(op, "the tensor is not contiguous");
    if (kind_ == "gloo" && !t.device().is_cpu()) failed(op, fmt::format("Gloo groups take CPU tensors, got {}", t.device().str()));
    if (kind_ == "nccl" && !t.device().is_cuda()) failed(op, fmt::format("NCCL groups take CUDA tensors, got {}", t.device().str()));
  }
  void check_peer(int64_t r, const char* op) const {
    if (r < 0 || r >= size()) failed(op, fmt::format("peer rank {} is outside the group of {}", r, size()));
  }
  template <typename F>
  std::shared_ptr<Work> launch(const std::string& op, F&& start, std::function<void()> then = {}) {
    // Every rank posts a group's collectives in the same order, so their count names one operation
    // on all ranks; point-to-point operations are not counted.
    const bool p2p = op.rfind("send", 0) == 0 || op.rfind("recv", 0) == 0;
    const int64_t seq = p2p ? -1 : seq_++;
    c10::intrusive_ptr<c10d::Work> w;
    try {
      w = start();
    } catch (const std::exception& e) {
      failed(op, what_of(e));
    }
    return std::make_shared<C10dWork>(std::move(w), op, seq, this, std::move(then));
  }

  c10::intrusive_ptr<c10d::Backend> b_;
  std::string name_, kind_;
  int64_t world_rank_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> diag_;
  int64_t seq_ = 0;
};

void C10dWork::wait() {
  if (done_) return;
  bool ok = false;
  try {
    ok = w_->wait(group_->timeout());
  } catch (const std::exception& e) {
    std::string why = what_of(e);
    if (why.find("imed out") != std::string::npos || why.find("imeout") != std::string::npos)
      why = fmt::format("timed out after {} s (parallel.timeout_s):{} {}", group_->timeout().count() / 1000.0,
                        group_->who_reached(op_, seq_), why);
    group_->failed(op_, why);
  }
  if (!ok)
    group_->failed(op_, fmt::format("timed out after {} s (parallel.timeout_s):{}", group_->timeout().count() / 1000.0,
                                    group_->who_reached(op_, seq_)));
  done_ = true;
  if (then_) then_();
}

}  // namespace

std::shared_ptr<ProcessGroup> wrap_c10d(c10::intrusive_ptr<c10d::Backend> backend, std::string name, std::string kind,
                                        int64_t world_rank, std::chrono::milliseconds timeout,
                                        c10::intrusive_ptr<c10d::Store> diag_store) {
  return std::make_shared<C10dGroup>(std::move(backend), std::move(name), std::move(kind), world_rank, timeout,
                                     std::move(diag_store));
}

}  // namespace strata::parallel
