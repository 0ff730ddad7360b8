// The tensor-parallel building blocks with t ranks simulated by threads over a FakeGroup: the f/g and
// sequence-parallel autograd ops, vocab padding, the vocab-parallel embedding and cross-entropy
// (specs/models.md §6 invariant 4: equal to the full ones to 1e-6), and the per-rank dropout stream.
#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "parallel/tensor_parallel_layers.hpp"
#include "parallel/tensor_parallel_ops.hpp"
#include "parallel/vocab_parallel.hpp"
#include "tests/parallel/fake_group.hpp"

using namespace strata;
using parallel::ProcessGroup;

namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a - b).abs().max().item<double>();
}

}  // namespace

TEST_CASE("f and g: identity/all-reduce forward and backward", "[parallel][tp]") {
  const int64_t t = 2;
  std::vector<at::Tensor> gf(t), yg(t), gg(t);
  testing::run_ranks(t, [&](int64_t r, std::shared_ptr<ProcessGroup> g) {
    auto x = at::full({3}, double(r + 1), at::kDouble).requires_grad_();
    auto w = at::full({3}, double(10 * (r + 1)), at::kDouble);
    (parallel::copy_to_tp_region(x, *g) * w).sum().backward();
    gf[r] = x.grad().clone();
    auto x2 = at::full({3}, double(r + 1), at::kDouble).requires_grad_();
    auto y = parallel::reduce_from_tp_region(x2, *g);
    (y * w).sum().backward();
    yg[r] = y.detach().clone();
    gg[r] = x2.grad().clone();
  });
  for (int64_t r = 0; r < t; ++r) {
    REQUIRE(at::allclose(gf[r], at::full({3}, 30.0, at::kDouble)));  // f backward: 10 + 20
    REQUIRE(at::allclose(yg[r], at::full({3}, 3.0, at::kDouble)));   // g forward: 1 + 2
    REQUIRE(at::allclose(gg[r], at::full({3}, 10.0 * (r + 1), at::kDouble)));  // g backward: identity
  }
}

TEST_CASE("sequence-parallel all-gather / reduce-scatter pair and its conjugate", "[parallel][tp][sp]") {
  const int64_t t = 4;
  at::manual_seed(3);
  auto xs = at::randn({t, 2, 3, 5}, at::kDouble);  // rank r's chunk: xs[r], sequence dim 1
  auto ups = at::randn({t, 2, 3 * t, 5}, at::kDouble);  // each rank's upstream gradient
  std::vector<at::Tensor> gathered(t), gx(t), scattered(t), gy(t);
  testing::run_ranks(t, [&](int64_t r, std::shared_ptr<ProcessGroup> g) {
    auto x = xs[r].clone().requires_grad_();
    auto y = parallel::gather_from_sp_region(x, 1, *g);
    (y * ups[r]).sum().backward();
    gathered[r] = y.detach();
    gx[r] = x.grad().clone();
    auto z = ups[r].clone().requires_grad_();
    auto s = parallel::reduce_scatter_to_sp_region(z, 1, *g);
    (s * xs[r]).sum().backward();
    scattered[r] = s.detach();
    gy[r] = z.grad().clone();
  });
  auto full = at::cat(xs.unbind(0), 1);
  auto up_sum = ups.sum(0);
  for (int64_t r = 0; r < t; ++r) {
    REQUIRE(max_diff(gathered[r], full) == 0.0);
    REQUIRE(max_diff(gx[r], up_sum.narrow(1, 3 * r, 3)) < 1e-12);   // reduce-scatter of the gradients
    REQUIRE(max_diff(scattered[r], up_sum.narrow(1, 3 * r, 3)) < 1e-12);
    REQUIRE(max_diff(gy[r], full) == 0.0);  // all-gather of the gradients
  }
}

TEST_CASE("vocab padding rule", "[parallel][tp][vocab]") {
  REQUIRE(parallel::padded_vocab_size(50257, 1, 128) == 50304);
  REQUIRE(parallel::padded_vocab_size(50257, 2, 128) == 50432);
  REQUIRE(parallel::padded_vocab_size(50, 4, 8) == 64);
  auto s = parallel::vocab_shard(50, 4, 3, 8);
  REQUIRE(s.start == 48);
  REQUIRE(s.end == 64);
  REQUIRE_THROWS_AS(parallel::vocab_shard(50, 4, 4, 8), Error);
}

TEST_CASE("vocab-parallel cross-entropy and its gradient equal the full ones", "[parallel][tp][vocab]") {
  for (int64_t t : {2, 4}) {
    for (int64_t multiple : {1, 8}) {
      const int64_t V = 50, N = 64;
      at::manual_seed(11 + t);
      auto logits = at::randn({N, V}) * 3.0;
      auto targets = at::arange(N, at::kLong).remainder(V);  // every shard, edges included
      targets[5] = -100;                                     // ignored
      targets[6] = V - 1;
      auto full_logits = logits.clone().requires_grad_();
      auto ref = at::cross_entropy_loss(full_logits, targets, {}, at::Reduction::None, -100);
      ref.sum().backward();
      std::vector<at::Tensor> loss(t), grad(t);
      std::vector<parallel::VocabShard> shards(t);
      testing::run_ranks(t, [&](int64_t r, std::shared_ptr<ProcessGroup> g) {
        shards[r] = parallel::vocab_shard(V, t, r, multiple);
        auto local = parallel::vocab_rows(logits.t(), shards[r]).t().contiguous().requires_grad_();
        auto l = parallel::vocab_parallel_cross_entropy(local, targets, shards[r], *g);
        l.sum().backward();
        loss[r] = l.detach();
        grad[r] = local.grad().clone();
      });
      auto g_full = at::cat(grad, 1);
      INFO("t = " << t << ", multiple = " << multiple << ", padded vocab " << g_full.size(1));
      for (int64_t r = 0; r < t; ++r) REQUIRE(max_diff(loss[r], ref.detach()) < 1e-6);
      REQUIRE(max_diff(g_full.narrow(1, 0, V), full_logits.grad()) < 1e-6);
      if (g_full.size(1) > V) REQUIRE(g_full.narrow(1, V, g_full.size(1) - V).abs().max().item<double>() == 0.0);
    }
  }
}

TEST_CASE("vocab-parallel embedding equals the full lookup", "[parallel][tp][vocab]") {
  const int64_t t = 4, V = 50;
  at::manual_seed(5);
  auto table = at::randn({V, 8});
  auto ids = at::randint(0, V, {3, 7}, at::kLong);
  auto up = at::randn({3, 7, 8});
  auto full_table = table.clone().requires_grad_();
  auto ref = at::embedding(full_table, ids);
  (ref * up).sum().backward();
  std::vector<at::Tensor> out(t), grad(t);
  testing::run_ranks(t, [&](int64_t r, std::shared_ptr<ProcessGroup> g) {
    auto s = parallel::vocab_shard(V, t, r, 8);
    auto local = parallel::vocab_rows(table, s).requires_grad_();
    auto y = parallel::vocab_parallel_embedding(local, ids, s, *g);
    (y * up).sum().backward();
    out[r] = y.detach();
    grad[r] = local.grad().clone();
  });
  for (int64_t r = 0; r < t; ++r) REQUIRE(max_diff(out[r], ref.detach()) < 1e-6);
  REQUIRE(max_diff(at::cat(grad, 0).narrow(0, 0, V), full_table.grad()) < 1e-6);
}

TEST_CASE("dropout stream: per tp rank inside regions, untouched outside", "[parallel][tp][rng]") {
  at::manual_seed(7);
  auto a = at::rand({6}), c = at::rand({6});
  parallel::TpRng rank0(100 + 2718, c10::DeviceType::CPU), rank1(100 + 2719, c10::DeviceType::CPU);
  std::vector<at::Tensor> inside;
  for (auto* rng : {&rank0, &rank1}) {
    at::manual_seed(7);
    auto a2 = at::rand({6});
    rng->enter();
    rng->enter();  // idempotent (Q, K, V enter the same region)
    inside.push_back(at::rand({6}));
    rng->exit();
    auto c2 = at::rand({6});
    REQUIRE(at::equal(a, a2));
    REQUIRE(at::equal(c, c2));  // the outside stream is the same as without the region
  }
  REQUIRE_FALSE(at::equal(inside[0], inside[1]));
  rank0.enter();  // the region stream continues where it stopped
  auto next = at::rand({6});
  rank0.exit();
  REQUIRE_FALSE(at::equal(next, inside[0]));
}
