#include <ATen/ATen.h>

#include "core/error.hpp"
#include "parallel/process_group.hpp"

namespace strata::parallel {
namespace {

class DoneWork final : public Work {
 public:
  void wait() override {}
};

class SingleRankGroup final : public ProcessGroup {
 public:
  explicit SingleRankGroup(std::string name) : name_(std::move(name)) {}
  int64_t rank() const override { return 0; }
  int64_t size() const override { return 1; }
  std::string name() const override { return name_; }
  std::shared_ptr<Work> all_reduce(at::Tensor&, ReduceOp) override { return done(); }
  std::shared_ptr<Work> broadcast(at::Tensor&, int64_t root) override {
    check_peer(root, "broadcast");
    return done();
  }
  std::shared_ptr<Work> all_gather(std::vector<at::Tensor>& out, const at::Tensor& in) override {
    if (out.size() != 1) fail("{}: all_gather needs 1 output tensor, got {}", name_, out.size());
    out[0].copy_(in);
    return done();
  }
  std::shared_ptr<Work> all_gather_flat(at::Tensor& out, const at::Tensor& in) override {
    out.copy_(in);
    return done();
  }
  std::shared_ptr<Work> reduce_scatter_flat(at::Tensor& out, const at::Tensor& in, ReduceOp) override {
    out.copy_(in);
    return done();
  }
  std::shared_ptr<Work> send(const at::Tensor&, int64_t dst, int64_t) override {
    fail("{}: send to rank {} in a one-rank group", name_, dst);
  }
  std::shared_ptr<Work> recv(at::Tensor&, int64_t src, int64_t) override {
    fail("{}: recv from rank {} in a one-rank group", name_, src);
  }
  void barrier() override {}

 private:
  static std::shared_ptr<Work> done() { return std::make_shared<DoneWork>(); }
  void check_peer(int64_t r, const char* op) const {
    if (r != 0) fail("{}: {} names rank {} in a one-rank group", name_, op, r);
  }
  std::string name_;
};

}  // namespace

std::shared_ptr<ProcessGroup> make_single_rank_group(const std::string& name) {
  return std::make_shared<SingleRankGroup>(name);
}

}  // namespace strata::parallel
