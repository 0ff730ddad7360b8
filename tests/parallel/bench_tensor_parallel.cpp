// One test (a block's traffic is exactly Megatron's count) and a benchmark (hidden tag [.bench];
// scripts/bench/tp.sh runs it): tensor-parallel traffic
// per transformer layer against Megatron's count, and the step-time overhead of tp = 2 over tp = 1,
// both with ranks simulated by threads over the in-process FakeGroup (no network: the overhead is
// the extra work and synchronisation of the split, not wire time).
#include <atomic>
#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/gpt.hpp"
#include "models/llama.hpp"
#include "parallel/parallelize.hpp"
#include "parallel/vocab_parallel.hpp"
#include "tests/parallel/fake_group.hpp"

using namespace strata;

namespace {

// Counts the elements each collective carries (the payload handed to the group) on one rank.
class CountingGroup final : public parallel::ProcessGroup {
 public:
  explicit CountingGroup(std::shared_ptr<parallel::ProcessGroup> inner) : in_(std::move(inner)) {}
  int64_t rank() const override { return in_->rank(); }
  int64_t size() const override { return in_->size(); }
  std::string name() const override { return in_->name(); }
  std::shared_ptr<parallel::Work> all_reduce(at::Tensor& t, parallel::ReduceOp op) override {
    (op == parallel::ReduceOp::Sum && t.dim() == 3 ? act_elems : other_elems) += t.numel();
    return in_->all_reduce(t, op);
  }
  std::shared_ptr<parallel::Work> all_gather_flat(at::Tensor& out, const at::Tensor& in) override {
    act_elems += out.numel();
    return in_->all_gather_flat(out, in);
  }
  std::shared_ptr<parallel::Work> reduce_scatter_flat(at::Tensor& out, const at::Tensor& in,
                                                      parallel::ReduceOp op) override {
    act_elems += in.numel();
    return in_->reduce_scatter_flat(out, in, op);
  }
  std::shared_ptr<parallel::Work> all_gather(std::vector<at::Tensor>& o, const at::Tensor& i) override {
    return in_->all_gather(o, i);
  }
  std::shared_ptr<parallel::Work> broadcast(at::Tensor& t, int64_t root) override { return in_->broadcast(t, root); }
  std::shared_ptr<parallel::Work> send(const at::Tensor& t, int64_t d, int64_t tag) override { return in_->send(t, d, tag); }
  std::shared_ptr<parallel::Work> recv(at::Tensor& t, int64_t s, int64_t tag) override { return in_->recv(t, s, tag); }
  void barrier() override { in_->barrier(); }
  int64_t act_elems = 0, other_elems = 0;

 private:
  std::shared_ptr<parallel::ProcessGroup> in_;
};

}  // namespace

TEST_CASE("tensor-parallel traffic per layer and step-time overhead", "[.bench][parallel][tp]") {
  models::ModelConfig cfg;
  cfg.n_layer = 4, cfg.d_model = 256, cfg.n_head = 8, cfg.vocab_size = 256, cfg.max_seq_len = 256;
  const int64_t B = 4, S = 256, steps = 5;
  at::manual_seed(0);
  auto ids = at::randint(0, 256, {B, S}, at::kLong), targets = at::randint(0, 256, {B, S}, at::kLong);
  auto run = [&](int64_t t, int64_t n_layer, int64_t& act, int64_t& other) {
    auto c = cfg;
    c.n_layer = n_layer;
    double secs = 0;
    testing::run_ranks(t, [&](int64_t r, std::shared_ptr<parallel::ProcessGroup> g) {
      at::set_num_threads(1);
      auto counting = std::make_shared<CountingGroup>(g);
      auto mp = std::make_shared<models::Gpt>(c);  // named_modules() needs a shared_ptr-held top module
      auto& m = *mp;
      parallel::TensorParallelOptions o;
      o.vocab_multiple = 8;
      auto plan = parallel::parallelize(m, counting, o);
      auto step = [&] {
        auto logits = m.forward(ids);
        auto loss = t == 1 ? at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), targets.view({-1}))
                           : parallel::vocab_parallel_cross_entropy_mean(logits, targets, plan.vocab, *counting);
        loss.backward();
        plan.sync_grads();
        m.zero_grad();
      };
      step();  // warm-up
      counting->act_elems = counting->other_elems = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (int64_t s = 0; s < steps; ++s) step();
      if (r == 0) {
        secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
        act = counting->act_elems / steps;
        other = counting->other_elems / steps;
      }
    });
    return secs;
  };
  int64_t a4 = 0, o4 = 0, a2 = 0, o2 = 0, a1 = 0, o1 = 0;
  const double t1 = run(1, cfg.n_layer, a1, o1);
  const double t2 = run(2, cfg.n_layer, a4, o4);
  run(2, cfg.n_layer - 2, a2, o2);
  // Per layer: the difference of two depths cancels the embedding and the loss.
  const double per_layer = double(a4 - a2) / 2.0;
  const double megatron = 4.0 * B * S * cfg.d_model;  // 2 all-reduces forward + 2 backward of B*s*h
  std::printf("tp traffic per layer (payload, fp32): %.0f elements = %.2f MB; Megatron 4*B*s*h = %.0f (ratio %.3f)\n",
              per_layer, per_layer * 4 / 1e6, megatron, per_layer / megatron);
  std::printf("ring all-reduce wire bytes per rank at t = 2: 2*(t-1)/t * payload = %.2f MB per layer\n",
              per_layer * 4 / 1e6);
  std::printf("embedding + loss per step: %lld activation elements, %lld loss scalars (3*B*s = %lld)\n",
              static_cast<long long>(a2 - 2 * per_layer), static_cast<long long>(o4), static_cast<long long>(3 * B * S));
  std::printf("step time (fwd+bwd, 1 thread per rank, in-process): tp=1 %.1f ms, tp=2 %.1f ms per rank (ratio %.2f; "
              "ideal 0.5 with free communication)\n",
              t1 * 1e3, t2 * 1e3, t2 / t1);
  REQUIRE(per_layer > 0);
}

TEST_CASE("one block communicates Megatron's 4*B*s*h: Q/K/V and gate/up share one region entry", "[parallel][tp]") {
  const int64_t B = 2, S = 8, d = 32;
  for (const std::string arch : {"gpt", "llama"}) {
    models::ModelConfig cfg;
    cfg.d_model = d, cfg.n_head = 4, cfg.max_seq_len = 16;
    if (arch == "llama") cfg.n_kv_head = 2, cfg.multiple_of = 16, cfg.bias = false;
    std::vector<int64_t> act(2, -1);
    testing::run_ranks(2, [&](int64_t r, std::shared_ptr<parallel::ProcessGroup> g) {
      at::set_num_threads(1);
      auto counting = std::make_shared<CountingGroup>(g);
      std::shared_ptr<torch::nn::Module> block;
      if (arch == "gpt") block = std::make_shared<models::GptBlockImpl>(cfg);
      else block = std::make_shared<models::LlamaBlockImpl>(cfg);
      parallel::parallelize(*block, counting);
      auto x = at::ones({B, S, d}).requires_grad_();
      auto y = arch == "gpt" ? std::static_pointer_cast<models::GptBlockImpl>(block)->forward(x)
                             : std::static_pointer_cast<models::LlamaBlockImpl>(block)->forward(x);
      y.sum().backward();
      act[r] = counting->act_elems;
    });
    INFO(arch);
    REQUIRE(act[0] == 4 * B * S * d);  // 2 all-reduces forward (exits) + 2 backward (entries)
    REQUIRE(act[1] == act[0]);
  }
}
