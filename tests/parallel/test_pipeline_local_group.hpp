// Test support: a ProcessGroup over threads of one process (point-to-point only), so the pipeline
// runtime can be exercised with several ranks without a c10d backend. Sends are buffered (a send
// completes at once); a receive waits until the message with its (src, dst, tag) arrives.
#pragma once
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "parallel/process_group.hpp"

namespace strata::test {

class LocalHub {
 public:
  void put(int64_t src, int64_t dst, int64_t tag, at::Tensor t) {
    std::lock_guard<std::mutex> lock(mu_);
    box_[{src, dst, tag}].push_back(std::move(t));
    cv_.notify_all();
  }
  at::Tensor take(int64_t src, int64_t dst, int64_t tag) {
    std::unique_lock<std::mutex> lock(mu_);
    const auto key = std::make_tuple(src, dst, tag);
    if (!cv_.wait_for(lock, std::chrono::seconds(20), [&] { return !box_[key].empty(); }))
      fail("local group: rank {} timed out waiting for tag {} from rank {}", dst, tag, src);
    auto t = box_[key].front();
    box_[key].pop_front();
    return t;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::deque<at::Tensor>> box_;
};

class LocalGroup final : public parallel::ProcessGroup {
 public:
  LocalGroup(int64_t rank, int64_t size, std::shared_ptr<LocalHub> hub) : rank_(rank), size_(size), hub_(std::move(hub)) {}
  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }
  std::string name() const override { return "local-threads"; }
  std::shared_ptr<parallel::Work> all_reduce(at::Tensor&, parallel::ReduceOp) override { fail("local group: no all_reduce"); }
  std::shared_ptr<parallel::Work> broadcast(at::Tensor&, int64_t) override { fail("local group: no broadcast"); }
  std::shared_ptr<parallel::Work> all_gather(std::vector<at::Tensor>&, const at::Tensor&) override { fail("local group: no all_gather"); }
  std::shared_ptr<parallel::Work> all_gather_flat(at::Tensor&, const at::Tensor&) override { fail("local group: no all_gather"); }
  std::shared_ptr<parallel::Work> reduce_scatter_flat(at::Tensor&, const at::Tensor&, parallel::ReduceOp) override {
    fail("local group: no reduce_scatter");
  }
  std::shared_ptr<parallel::Work> send(const at::Tensor& t, int64_t dst, int64_t tag) override {
    hub_->put(rank_, dst, tag, t.clone());
    return std::make_shared<Done>();
  }
  std::shared_ptr<parallel::Work> recv(at::Tensor& t, int64_t src, int64_t tag) override {
    return std::make_shared<Recv>(hub_, src, rank_, tag, t);
  }
  void barrier() override {}

 private:
  struct Done final : parallel::Work {
    void wait() override {}
  };
  struct Recv final : parallel::Work {
    Recv(std::shared_ptr<LocalHub> h, int64_t s, int64_t d, int64_t tg, at::Tensor o) : hub(std::move(h)), src(s), dst(d), tag(tg), out(o) {}
    void wait() override {
      auto t = hub->take(src, dst, tag);
      if (!t.sizes().equals(out.sizes())) fail("local group: message of shape {} into buffer {}", t.sizes(), out.sizes());
      out.copy_(t);
    }
    std::shared_ptr<LocalHub> hub;
    int64_t src, dst, tag;
    at::Tensor out;
  };
  int64_t rank_, size_;
  std::shared_ptr<LocalHub> hub_;
};

}  // namespace strata::test
