// specs/reweighting.md §4 invariant 6: weights computed over a data-parallel group of W ranks (an
// in-process fake group: W threads meeting at a barrier per collective, tests/parallel/fake_group.hpp)
// give, after the data-parallel gradient average, the gradient of sum_i w_i l_i computed on one
// process over the concatenated batch; also with gradient accumulation, and with per-token losses
// from the vocab-parallel cross-entropy.
#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "parallel/vocab_parallel.hpp"
#include "reweighting/reweighter.hpp"
#include "tests/parallel/fake_group.hpp"

using namespace strata;
using namespace strata::reweighting;

namespace {

constexpr int64_t kT = 6, kD = 5, kV = 9;

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

struct Data {
  at::Tensor x;        // [n, T, D] inputs
  at::Tensor targets;  // [n, T]
};

Data make_data(int64_t n, uint64_t seed) {
  at::manual_seed(seed);
  return {at::randn({n, kT, kD}), at::randint(0, kV, {n, kT}, at::kLong)};
}

ReweightConfig config(const std::string& strategy) {
  ReweightConfig c;
  c.strategy = strategy;
  c.r = 0.4;
  c.burn_in_steps = 0;
  return c;
}

// One micro-step's loss of a linear "model" theta [D, V] on rows [begin, begin + b).
at::Tensor micro_loss(const Reweighter& rw, const at::Tensor& theta, const Data& d, int64_t begin, int64_t b,
                      at::Tensor* weights = nullptr) {
  auto x = d.x.narrow(0, begin, b), t = d.targets.narrow(0, begin, b);
  auto out = rw.loss(at::matmul(x, theta), t, /*step=*/3);
  if (weights) *weights = out.weights;
  return out.loss;
}

}  // namespace

TEST_CASE("dp-group weights and averaged gradients equal one process over the whole batch", "[reweighting][dp]") {
  for (const std::string strategy : {"linupper", "quadratic", "extremes", "uniform"}) {
    for (int64_t W : {2, 4}) {
      for (int64_t ga : {1, 2}) {
        const int64_t b = 3, n = W * b;
        at::manual_seed(1);
        auto theta0 = at::randn({kD, kV});
        std::vector<Data> micro;
        for (int64_t a = 0; a < ga; ++a) micro.push_back(make_data(n, 100 + a));

        // Reference: one process, the concatenated micro-batch, weights over all n rows.
        auto theta = theta0.clone().requires_grad_();
        Reweighter single(config(strategy), parallel::make_single_rank_group("dp"));
        std::vector<at::Tensor> ref_w(ga);
        for (int64_t a = 0; a < ga; ++a)
          (micro_loss(single, theta, micro[a], 0, n, &ref_w[a]) / static_cast<double>(ga)).backward();
        auto ref_grad = theta.grad().clone();

        // W ranks, each with its b rows of every micro-batch.
        std::vector<at::Tensor> grads(W);
        std::vector<std::vector<at::Tensor>> weights(W, std::vector<at::Tensor>(ga));
        testing::run_ranks(W, [&](int64_t k, std::shared_ptr<parallel::ProcessGroup> g) {
          auto th = theta0.clone().requires_grad_();
          Reweighter rw(config(strategy), g);
          for (int64_t a = 0; a < ga; ++a)
            (micro_loss(rw, th, micro[a], k * b, b, &weights[k][a]) / static_cast<double>(ga)).backward();
          grads[k] = th.grad().clone();
        });
        auto avg = grads[0];
        for (int64_t k = 1; k < W; ++k) avg = avg + grads[k];
        avg = avg / static_cast<double>(W);  // what the data-parallel all-reduce (Avg) gives

        INFO(strategy << " W = " << W << " GA = " << ga);
        for (int64_t k = 0; k < W; ++k)
          for (int64_t a = 0; a < ga; ++a) REQUIRE(max_diff(weights[k][a], ref_w[a]) < 1e-6);
        REQUIRE(max_diff(avg, ref_grad) < 1e-5);
        if (strategy != "uniform") {  // and the reweighting did something: differs from the plain mean
          auto plain = theta0.clone().requires_grad_();
          for (int64_t a = 0; a < ga; ++a) {
            auto lg = at::matmul(micro[a].x, plain);
            (at::cross_entropy_loss(lg.view({-1, kV}), micro[a].targets.view({-1})) / static_cast<double>(ga)).backward();
          }
          REQUIRE(max_diff(plain.grad(), ref_grad) > 1e-4);
        }
      }
    }
  }
}

TEST_CASE("token-weighted form with uniform weights is each rank's token-mean cross-entropy", "[reweighting][dp]") {
  const int64_t W = 2, b = 3;
  auto d = make_data(W * b, 7);
  d.targets[0].narrow(0, 0, 4).fill_(-100);  // rows of unequal valid length
  d.targets[4].narrow(0, 2, 3).fill_(-100);
  auto theta = at::randn({kD, kV});
  std::vector<double> got(W), want(W);
  testing::run_ranks(W, [&](int64_t k, std::shared_ptr<parallel::ProcessGroup> g) {
    auto c = config("uniform");
    c.token_weighted = true;
    Reweighter rw(c, g);
    auto lg = at::matmul(d.x.narrow(0, k * b, b), theta);
    auto t = d.targets.narrow(0, k * b, b);
    got[k] = rw.loss(lg, t, 0).loss.item<double>();
    want[k] = at::cross_entropy_loss(lg.reshape({-1, kV}), t.reshape({-1})).item<double>();
  });
  for (int64_t k = 0; k < W; ++k) REQUIRE(std::abs(got[k] - want[k]) < 1e-6);
}

TEST_CASE("per-sequence losses from the vocab-parallel cross-entropy equal the full ones", "[reweighting][tp]") {
  const int64_t t = 2, B = 3, V = 13;
  at::manual_seed(3);
  auto logits = at::randn({B, kT, V}) * 2.0;
  auto targets = at::randint(0, V, {B, kT}, at::kLong);
  targets[2][1] = -100;
  auto ref = per_sequence_cross_entropy(logits, targets);
  auto ref_w = Reweighter(config("linupper"), parallel::make_single_rank_group("dp")).loss(ref, 0);
  std::vector<at::Tensor> seq(t), w(t);
  testing::run_ranks(t, [&](int64_t r, std::shared_ptr<parallel::ProcessGroup> g) {
    auto shard = parallel::vocab_shard(V, t, r, 1);
    auto flat = logits.reshape({-1, V});
    auto local = parallel::vocab_rows(flat.t(), shard).t().contiguous();
    auto tok = parallel::vocab_parallel_cross_entropy(local, targets.reshape({-1}), shard, *g);
    auto s = per_sequence_from_tokens(tok, targets);
    seq[r] = s.loss;
    // TP ranks hold the same sequences: the reweighter gathers over the dp group only (one rank here).
    w[r] = Reweighter(config("linupper"), parallel::make_single_rank_group("dp")).loss(s, 0).weights;
  });
  for (int64_t r = 0; r < t; ++r) {
    REQUIRE(max_diff(seq[r], ref.loss) < 1e-5);
    REQUIRE(max_diff(w[r], ref_w.weights) < 1e-5);
  }
}
