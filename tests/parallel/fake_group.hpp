// An in-process ProcessGroup for tests: t "ranks" are t threads of this process that meet at a
// barrier for every collective. Reductions add the ranks' tensors in rank order, so every rank gets
// bitwise the same result. run_ranks(t, fn) runs fn(rank, group) on t threads and rethrows the first
// exception. Only the collectives tensor parallelism uses are provided; the rest fail loudly.
#pragma once
#include <barrier>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "parallel/process_group.hpp"

namespace strata::testing {

class FakeHub {
 public:
  explicit FakeHub(int64_t t) : t_(t), bar_(t), slots_(t) {}
  int64_t size() const { return t_; }
  // Every rank deposits `in`; `combine(slots)` runs on every rank once all have arrived.
  at::Tensor exchange(int64_t rank, const at::Tensor& in,
                      const std::function<at::Tensor(const std::vector<at::Tensor>&)>& combine) {
    slots_[rank] = in.detach().clone();
    bar_.arrive_and_wait();
    auto out = combine(slots_);
    bar_.arrive_and_wait();
    return out;
  }
  void barrier() { bar_.arrive_and_wait(); }
  void drop() { bar_.arrive_and_drop(); }

 private:
  int64_t t_;
  std::barrier<> bar_;
  std::vector<at::Tensor> slots_;
};

class FakeGroup final : public parallel::ProcessGroup {
 public:
  FakeGroup(std::shared_ptr<FakeHub> hub, int64_t rank) : hub_(std::move(hub)), rank_(rank) {}
  int64_t rank() const override { return rank_; }
  int64_t size() const override { return hub_->size(); }
  std::string name() const override { return "fake-tp"; }

  std::shared_ptr<parallel::Work> all_reduce(at::Tensor& t, parallel::ReduceOp op) override {
    auto r = hub_->exchange(rank_, t, [op](const std::vector<at::Tensor>& s) {
      auto acc = s[0].clone();
      for (size_t i = 1; i < s.size(); ++i) {
        if (op == parallel::ReduceOp::Max) acc = at::maximum(acc, s[i]);
        else if (op == parallel::ReduceOp::Min) acc = at::minimum(acc, s[i]);
        else acc = acc + s[i];
      }
      if (op == parallel::ReduceOp::Avg) acc = acc / static_cast<double>(s.size());
      return acc;
    });
    t.copy_(r);
    return done();
  }
  std::shared_ptr<parallel::Work> all_gather_flat(at::Tensor& out, const at::Tensor& in) override {
    out.copy_(hub_->exchange(rank_, in, [](const std::vector<at::Tensor>& s) { return at::cat(s, 0); }));
    return done();
  }
  std::shared_ptr<parallel::Work> reduce_scatter_flat(at::Tensor& out, const at::Tensor& in,
                                                      parallel::ReduceOp op) override {
    if (op != parallel::ReduceOp::Sum && op != parallel::ReduceOp::Avg)
      fail("fake group: reduce_scatter supports Sum and Avg only");
    const int64_t r = rank_, t = size();
    const bool avg = op == parallel::ReduceOp::Avg;
    out.copy_(hub_->exchange(rank_, in, [r, t, avg](const std::vector<at::Tensor>& s) {
      auto acc = s[0].chunk(t, 0)[r].clone();
      for (size_t i = 1; i < s.size(); ++i) acc = acc + s[i].chunk(t, 0)[r];
      return avg ? acc / static_cast<double>(t) : acc;
    }));
    return done();
  }
  std::shared_ptr<parallel::Work> all_gather(std::vector<at::Tensor>& out, const at::Tensor& in) override {
    auto cat = hub_->exchange(rank_, in, [](const std::vector<at::Tensor>& s) { return at::stack(s, 0); });
    for (int64_t i = 0; i < size(); ++i) out[i].copy_(cat[i]);
    return done();
  }
  std::shared_ptr<parallel::Work> broadcast(at::Tensor& t, int64_t root) override {
    t.copy_(hub_->exchange(rank_, t, [root](const std::vector<at::Tensor>& s) { return s[root].clone(); }));
    return done();
  }
  std::shared_ptr<parallel::Work> send(const at::Tensor&, int64_t, int64_t) override { fail("fake group: no send"); }
  std::shared_ptr<parallel::Work> recv(at::Tensor&, int64_t, int64_t) override { fail("fake group: no recv"); }
  void barrier() override { hub_->barrier(); }

 private:
  struct Done final : parallel::Work {
    void wait() override {}
  };
  static std::shared_ptr<parallel::Work> done() { return std::make_shared<Done>(); }
  std::shared_ptr<FakeHub> hub_;
  int64_t rank_;
};

// Runs fn(rank, group) for rank = 0..t-1 on t threads; rethrows the first failure.
inline void run_ranks(int64_t t, const std::function<void(int64_t, std::shared_ptr<parallel::ProcessGroup>)>& fn) {
  auto hub = std::make_shared<FakeHub>(t);
  std::vector<std::exception_ptr> errors(t);
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < t; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(r, std::make_shared<FakeGroup>(hub, r));
      } catch (...) {
        errors[r] = std::current_exception();
        hub->drop();  // let the other ranks' barriers complete instead of hanging
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// A tp x dp mesh of threads: fn(tp rank, dp rank, tp group, dp group). The tp group of dp rank d
// holds the tp ranks 0..tp-1 of d; the dp group of tp rank r holds the dp ranks 0..dp-1 of r.
inline void run_mesh(int64_t tp, int64_t dp,
                     const std::function<void(int64_t, int64_t, std::shared_ptr<parallel::ProcessGroup>,
                                              std::shared_ptr<parallel::ProcessGroup>)>& fn) {
  std::vector<std::shared_ptr<FakeHub>> tp_hubs, dp_hubs;
  for (int64_t d = 0; d < dp; ++d) tp_hubs.push_back(std::make_shared<FakeHub>(tp));
  for (int64_t r = 0; r < tp; ++r) dp_hubs.push_back(std::make_shared<FakeHub>(dp));
  std::vector<std::exception_ptr> errors(tp * dp);
  std::vector<std::thread> threads;
  for (int64_t d = 0; d < dp; ++d)
    for (int64_t r = 0; r < tp; ++r)
      threads.emplace_back([&, r, d] {
        try {
          fn(r, d, std::make_shared<FakeGroup>(tp_hubs[d], r), std::make_shared<FakeGroup>(dp_hubs[r], d));
        } catch (...) {
          errors[d * tp + r] = std::current_exception();
          tp_hubs[d]->drop();  // let the other ranks' barriers complete instead of hanging
          dp_hubs[r]->drop();
        }
      });
  for (auto& th : threads) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace strata::testing
