// Sophia under ZeRO-1, with two ranks as two threads of one Gloo group: the refresh's gradients go
// through the data-parallel reducer into each rank's shard (optim::data_parallel_refresh), so dp = 2
// with sharded Sophia state gives the per-step losses, curvature state and logged win_rate /
// hessian_norm of one process (no ZeRO-1) on the same global batch, for refresh intervals 2..5,
// with GNB and Hutchinson. A zero1 state saved at step 10 and loaded into a fresh Zero1 (built from
// other weights: load_state must re-read its pieces) continues bitwise like the straight run.
#include <functional>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <catch2/catch.hpp>
#include <torch/autograd.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "optim/grad_clip.hpp"
#include "optim/hessian.hpp"
#include "optim/sophia.hpp"
#include "optim/zero1.hpp"
#include "parallel/backends.hpp"
#include "parallel/data_parallel.hpp"
#include "tests/support/gloo_ranks.hpp"

using namespace strata;

namespace {

constexpr int64_t V = 16, D = 8, T = 6, MB = 4;  // vocab, width, sequence, rows per micro-batch
constexpr int64_t GLOBAL = 8;                    // rows per step: dp = 1 x 2 micro-steps or dp = 2 x 1
constexpr int STEPS = 20;
constexpr double LR = 0.02;

using Named = std::vector<std::pair<std::string, at::Tensor>>;

void run_ranks(int n, const std::function<void(int, parallel::ProcessGroup&)>& body) {
  testing::run_gloo_ranks(n, body, std::chrono::seconds(60), "sophia-zero1");
}

// A tiny language model: logits = tanh(emb[x] w1 + b1) head^T.
Named make_params(uint64_t seed = 5) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto rnd = [&](std::vector<int64_t> shape, double scale) {
    return (at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)) * scale).set_requires_grad(true);
  };
  return {{"emb.weight", rnd({V, D}, 0.5)}, {"mlp.weight", rnd({D, D}, 0.4)}, {"mlp.bias", rnd({D}, 0.1)},
          {"head.weight", rnd({V, D}, 0.5)}};
}

// Sample i: a learnable token sequence of length T + 1 (inputs and next-token targets).
at::Tensor tokens(const std::vector<int64_t>& idx) {
  auto out = at::empty({static_cast<int64_t>(idx.size()), T + 1}, at::kLong);
  for (size_t b = 0; b < idx.size(); ++b)
    for (int64_t t = 0; t <= T; ++t) out[b][t] = (3 * idx[b] + 5 * t + (idx[b] * t) % 7) % V;
  return out;
}

// data::micro_batch_indices: rows of micro-step a on dp rank r of step s's global batch.
std::vector<int64_t> rows(int64_t s, int64_t a, int64_t ga, int64_t r, int64_t dp, int64_t base = 0) {
  std::vector<int64_t> out;
  for (int64_t k = 0; k < MB; ++k) out.push_back(base + s * GLOBAL + (a * dp + r) * MB + k);
  return out;
}

at::Tensor logits_of(const Named& p, const at::Tensor& x) {
  auto h = at::tanh(at::matmul(at::embedding(p[0].second, x), p[1].second) + p[2].second);
  return at::matmul(h, p[3].second.t());
}

at::Tensor loss_of(const Named& p, const std::vector<int64_t>& idx) {
  auto tk = tokens(idx);
  auto logits = logits_of(p, tk.narrow(1, 0, T));
  return at::cross_entropy_loss(logits.reshape({-1, V}), tk.narrow(1, 1, T).reshape({-1}));
}

constexpr int64_t kRefreshBase = 1'000'000;  // refresh batches: other samples than training's

struct Setup {
  int64_t k = 3;
  optim::Sophia::Estimator est = optim::Sophia::Estimator::Gnb;
};

std::unique_ptr<optim::Optimizer> make_sophia(std::vector<optim::ParamGroup> g, const Setup& s) {
  auto opt = std::make_unique<optim::Sophia>(std::move(g), 0.965, 0.99, s.est == optim::Sophia::Estimator::Gnb ? 0.05 : 0.01,
                                             s.k, s.est);
  opt->set_tokens_per_step(static_cast<double>(GLOBAL * T));
  return opt;
}

std::vector<at::Tensor> tensors(const Named& p) {
  std::vector<at::Tensor> out;
  for (const auto& [_, t] : p) out.push_back(t);
  return out;
}

// The refresh after step s, grad_accum ga micro-steps of this rank's rows.
void refresh(optim::Optimizer& opt, const Named& p, int64_t s, const Setup& su, int64_t ga, int64_t r, int64_t dp,
             at::Generator& gen, const optim::RefreshComm& comm) {
  const int64_t ref = s / su.k;
  if (su.est == optim::Sophia::Estimator::Gnb) {
    optim::refresh_gnb(
        opt, tensors(p), ga,
        [&](int64_t a) { return logits_of(p, tokens(rows(ref, a, ga, r, dp, kRefreshBase)).narrow(1, 0, T)); }, gen, 1.0,
        comm);
  } else {
    optim::refresh_hutchinson(
        opt, tensors(p), ga, [&](int64_t a) { return loss_of(p, rows(ref, a, ga, r, dp, kRefreshBase)); }, gen,
        "rademacher", comm);
  }
}

struct RefResult {
  std::vector<double> losses;
  std::map<std::string, at::Tensor> state;
  std::vector<std::pair<std::string, double>> metrics;
};

// One process, no ZeRO-1: 2 micro-steps of MB rows per step.
RefResult reference(const Setup& su) {
  at::set_num_threads(1);
  auto p = make_params();
  auto opt = make_sophia(optim::make_param_groups(p, 0.1), su);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(77);
  RefResult out;
  for (int64_t s = 0; s < STEPS; ++s) {
    double loss = 0;
    for (int64_t a = 0; a < 2; ++a) {
      auto l = loss_of(p, rows(s, a, 2, 0, 1));
      (l / 2.0).backward();
      loss += l.item<double>() / 2;
    }
    optim::clip_grad_norm(tensors(p), 1.0);
    opt->step(LR);
    opt->zero_grad();
    if (optim::hessian_refresh_due(s, su.k)) refresh(*opt, p, s, su, 2, 0, 1, gen, {});
    out.losses.push_back(loss);
  }
  out.state = opt->state();
  out.metrics = opt->metrics();
  return out;
}

// One dp rank of a ZeRO-1 run over `g` (1 micro-step of MB rows per rank), steps [from, to).
struct Zero1Rank {
  Named p = make_params();
  std::shared_ptr<parallel::ProcessGroup> gp;
  std::unique_ptr<parallel::DataParallel> dp;
  std::unique_ptr<optim::Zero1> z;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(77);
  Setup su;

  Zero1Rank(parallel::ProcessGroup& g, const Setup& s) : gp(&g, [](parallel::ProcessGroup*) {}), su(s) {
    parallel::DataParallelOptions o;
    o.bucket_mb = 200.0 / (1024 * 1024);  // ~200 bytes: several buckets, parameters split across ranks
    o.shard_grads = true;
    dp = std::make_unique<parallel::DataParallel>(p, gp, o);
    z = std::make_unique<optim::Zero1>(*dp, optim::make_param_groups(p, 0.1),
                                       [&](std::vector<optim::ParamGroup> g) { return make_sophia(std::move(g), su); });
    z->set_tokens_per_step(static_cast<double>(GLOBAL * T));
  }

  std::vector<double> train(int64_t from, int64_t to) {
    std::vector<double> losses;
    const int64_t r = gp->rank(), n = gp->size();
    for (int64_t s = from; s < to; ++s) {
      auto l = loss_of(p, rows(s, 0, 1, r, n));
      dp->set_sync(true);
      l.backward();
      dp->finish();
      at::Tensor logged = l.detach().reshape({1}).clone();
      gp->all_reduce(logged, parallel::ReduceOp::Avg)->wait();
      optim::clip_grad_norm(z->shard_params(), 1.0, gp.get());
      z->step(LR);
      z->zero_grad();
      if (optim::hessian_refresh_due(s, su.k)) refresh(*z, p, s, su, 1, r, n, gen, optim::data_parallel_refresh(*z, dp.get()));
      losses.push_back(logged.item<double>());
    }
    return losses;
  }
};

}  // namespace

// Catch2 assertions are not thread-safe: the ranks record, the main thread checks.
struct RankResult {
  std::vector<double> losses;
  std::map<std::string, at::Tensor> state;
  std::vector<std::pair<std::string, double>> metrics;
  int64_t owned = 0, total = 0, refreshes = 0;
};

TEST_CASE("Sophia dp = 2 with ZeRO-1 gives one process's losses, state and metrics", "[optim][sophia][zero1]") {
  for (auto est : {optim::Sophia::Estimator::Gnb, optim::Sophia::Estimator::Hutchinson})
    for (int64_t k = 2; k <= 5; ++k) {
      if (est == optim::Sophia::Estimator::Hutchinson && k != 2) continue;  // one interval suffices for -H
      Setup su{k, est};
      DYNAMIC_SECTION((est == optim::Sophia::Estimator::Gnb ? "gnb" : "hutchinson") << " k " << k) {
        const auto ref = reference(su);
        std::vector<RankResult> res(2);
        run_ranks(2, [&](int r, parallel::ProcessGroup& g) {
          Zero1Rank rank(g, su);
          auto& inner = dynamic_cast<optim::Sophia&>(rank.z->inner());
          auto& out = res[r];
          for (const auto& grp : inner.groups())
            for (const auto& t : grp.params) out.owned += t.numel();
          for (const auto& [_, t] : rank.p) out.total += t.numel();
          out.losses = rank.train(0, STEPS);
          out.refreshes = inner.refreshes();
          out.state = rank.z->state();      // collective: gathered m and hc
          out.metrics = rank.z->metrics();  // collective: reduced over the ranks
        });
        for (int r = 0; r < 2; ++r) {
          const auto& got = res[r];
          INFO("rank " << r);
          CHECK(got.owned < got.total);  // each rank owns only part of the curvature state
          REQUIRE(got.losses.size() == ref.losses.size());
          for (size_t i = 0; i < got.losses.size(); ++i) {
            INFO("step " << i);
            CHECK(got.losses[i] == Approx(ref.losses[i]).epsilon(1e-5));
          }
          CHECK(got.refreshes == STEPS / k);
          REQUIRE(got.state.size() == ref.state.size());
          for (const auto& [key, want] : ref.state) {
            INFO(key);
            REQUIRE(got.state.count(key));
            CHECK(at::allclose(got.state.at(key).to(at::kDouble), want.to(at::kDouble), 1e-4, 1e-9));
          }
          REQUIRE(got.metrics.size() == ref.metrics.size());
          for (size_t i = 0; i < got.metrics.size(); ++i) {
            INFO(got.metrics[i].first);
            REQUIRE(got.metrics[i].first == ref.metrics[i].first);
            if (got.metrics[i].first == "win_rate")
              CHECK(std::abs(got.metrics[i].second - ref.metrics[i].second) <= 1.0 / static_cast<double>(got.total) + 1e-12);
            else
              CHECK(got.metrics[i].second == Approx(ref.metrics[i].second).epsilon(1e-4));
          }
        }
      }
    }
}

TEST_CASE("Sophia + ZeRO-1: state saved at step 10 and loaded into a fresh Zero1 resumes bitwise", "[optim][sophia][zero1][resume]") {
  for (int64_t k : {3, 4}) {
    Setup su{k, optim::Sophia::Estimator::Gnb};
    DYNAMIC_SECTION("k " << k) {
      std::vector<std::vector<double>> straight(2), first(2), second(2);
      std::vector<int64_t> refreshes(2);
      run_ranks(2, [&](int r, parallel::ProcessGroup& g) {
        {
          Zero1Rank a(g, su);
          straight[r] = a.train(0, STEPS);
        }
        Zero1Rank b(g, su);
        first[r] = b.train(0, 10);
        // The "checkpoint": weights, the gathered optimizer state, the refresh generator.
        Named saved_params;
        for (const auto& [n, t] : b.p) saved_params.push_back({n, t.detach().clone()});
        const auto saved_state = b.z->state();
        const auto saved_gen = b.gen.get_state();
        // A fresh rank: its Zero1 pieces hold the initial weights. Parameters are loaded first, then the
        // state, and load_state must re-read the pieces (no trainer here to do it).
        Zero1Rank c(g, su);
        {
          torch::NoGradGuard no_grad;
          for (size_t i = 0; i < c.p.size(); ++i) c.p[i].second.copy_(saved_params[i].second);
        }
        c.z->load_state(saved_state);
        c.gen.set_state(saved_gen);
        second[r] = c.train(10, STEPS);
        refreshes[r] = dynamic_cast<optim::Sophia&>(c.z->inner()).refreshes();
      });
      for (int r = 0; r < 2; ++r) {
        INFO("rank " << r);
        REQUIRE(first[r].size() == 10);
        REQUIRE(second[r].size() == 10);
        for (int i = 0; i < 10; ++i) {
          INFO("step " << i);
          CHECK(first[r][i] == straight[r][i]);
          CHECK(second[r][i] == straight[r][10 + i]);
        }
        CHECK(refreshes[r] == STEPS / k);
      }
    }
  }
}
