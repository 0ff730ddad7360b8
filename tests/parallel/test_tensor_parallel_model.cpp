// parallelize() on real model blocks, t ranks simulated by threads over a FakeGroup: attention (MHA,
// GQA with split and with replicated KV heads, RoPE, biases), SwiGLU MLP, and whole GPT models
// (tied and untied heads) equal the unsplit model in outputs (1e-5) and gradients; the sharded
// weights are exactly slices of the tp = 1 weights; training curves and clipped grad norms match.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>
#include <torch/optim/adamw.h>

#include <catch2/catch.hpp>

#include "models/blocks/attention.hpp"
#include "models/blocks/mlp.hpp"
#include "models/gpt.hpp"
#include "parallel/parallelize.hpp"
#include "parallel/vocab_parallel.hpp"
#include "tests/parallel/fake_group.hpp"

using namespace strata;
using parallel::ProcessGroup;

namespace {

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The slice of a full tensor that rank r must hold (the rule in parallel/parallelize.hpp, restated).
at::Tensor shard_of(const std::string& name, const at::Tensor& full, int64_t r, int64_t t, int64_t head_dim,
                    const parallel::VocabShard& vs) {
  if (has(name, "tok_emb") || has(name, "head.")) return parallel::vocab_rows(full, vs);
  const bool attn_col = has(name, "wq.") || has(name, "wk.") || has(name, "wv.");
  if (attn_col || has(name, "w1.") || has(name, "w3.")) {
    const int64_t unit = attn_col ? head_dim : 1, units = full.size(0) / unit;
    if (units % t == 0) return full.narrow(0, r * full.size(0) / t, full.size(0) / t);
    return full.narrow(0, (r / (t / units)) * unit, unit);  // a KV head shared by t/units ranks
  }
  if ((has(name, "wo.") || has(name, "w2.")) && ends_with(name, ".weight"))
    return full.narrow(1, r * full.size(1) / t, full.size(1) / t);
  return full;
}

void randomize(torch::nn::Module& m, uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : m.parameters()) p.copy_(at::empty(p.sizes()).normal_(0.0, 0.3, gen));
}

struct RankResult {
  at::Tensor out, x_grad;
  std::map<std::string, at::Tensor> weights, grads;
  parallel::VocabShard vocab;
};

void collect(torch::nn::Module& m, RankResult& res) {
  for (const auto& kv : m.named_parameters()) {
    res.weights[kv.key()] = kv.value().detach().clone();
    res.grads[kv.key()] = kv.value().grad().clone();
  }
}

void check_against(const torch::nn::Module& full, const std::vector<RankResult>& ranks, int64_t head_dim,
                   double tol) {
  const int64_t t = ranks.size();
  for (int64_t r = 0; r < t; ++r) {
    for (const auto& kv : full.named_parameters()) {
      INFO("rank " << r << " of " << t << ", parameter " << kv.key());
      auto w = shard_of(kv.key(), kv.value().detach(), r, t, head_dim, ranks[r].vocab);
      REQUIRE(at::equal(ranks[r].weights.at(kv.key()), w));  // exactly the tp = 1 weights, sliced
      auto g = shard_of(kv.key(), kv.value().grad(), r, t, head_dim, ranks[r].vocab);
      // Gradients summed over ranks (shared KV heads, sequence-parallel partials) round differently
      // from one process: the tolerance is relative to the gradient's scale.
      REQUIRE((ranks[r].grads.at(kv.key()) - g).abs().max().item<double>() < tol * (1.0 + g.abs().max().item<double>()));
    }
  }
}

// Outputs of a split layer sum partial products in another order than one process; the tolerance
// is relative to the values' scale (MKL's kernels, and so the rounding, differ between CPUs).
bool close_to(const at::Tensor& a, const at::Tensor& b, double tol) {
  return (a - b).abs().max().item<double>() < tol * (1.0 + b.abs().max().item<double>());
}

}  // namespace

TEST_CASE("attention split by heads equals the full block (MHA, GQA split and replicated)", "[parallel][tp]") {
  at::set_num_threads(1);
  struct Case { int64_t t, kv; };
  for (Case c : {Case{2, 4}, Case{4, 4}, Case{2, 2}, Case{4, 2}, Case{4, 1}}) {
    models::ModelConfig cfg;
    cfg.d_model = 32, cfg.n_head = 4, cfg.n_kv_head = c.kv, cfg.bias = true;
    models::Attention full(cfg, /*causal=*/true, /*rope=*/true);
    randomize(*full, 7);
    at::manual_seed(1);
    auto x0 = at::randn({2, 8, 32}), up = at::randn({2, 8, 32});
    auto x = x0.clone().requires_grad_();
    auto ref = full(x);
    (ref * up).sum().backward();
    std::vector<RankResult> res(c.t);
    testing::run_ranks(c.t, [&](int64_t r, std::shared_ptr<ProcessGroup> g) {
      models::Attention a(cfg, true, true);
      randomize(*a, 7);
      auto plan = parallel::parallelize(*a, g);
      auto xr = x0.clone().requires_grad_();
      auto y = a(xr);
      (y * up).sum().backward();
      plan.sync_grads();
      res[r].out = y.detach();
      res[r].x_grad = xr.grad().clone();
      collect(*a, res[r]);
    });
    INFO("tp = " << c.t << ", n_kv_head = " << c.kv);
    for (const auto& rr : res) {
      REQUIRE(close_to(rr.out, ref.detach(), 1e-5));
      REQUIRE(close_to(rr.x_grad, x.grad(), 1e-5));
    }
    check_against(*full, res, cfg.head_dim(), 1e-5);
  }
}

TEST_CASE("SwiGLU MLP: gate and up columns stay paired", "[parallel][tp]") {
  at::set_num_threads(1);
  for (int64_t t : {2, 4}) {
    models::ModelConfig cfg;
    cfg.d_model = 32, cfg.bias = false, cfg.multiple_of = 32;
    models::Mlp full(cfg, models::Activation::SwiGLU);
    randomize(*full, 9);
    at::manual_seed(2);
    auto x0 = at::randn({2, 5, 32}), up = at::randn({2, 5, 32});
    auto x = x0.clone().requires_grad_();
    auto ref = full(x);
    (ref * up).sum().backward();
    std::vector<RankResult> res(t);
    testing::run_ranks(t, [&](int64_t r, std::shared_ptr<ProcessGroup> g) {
      models::Mlp m(cfg, models::Activation::SwiGLU);
      randomize(*m, 9);
      parallel::parallelize(*m, g);
      auto xr = x0.clone().requires_grad_();
      auto y = m(xr);
      (y * up).sum().backward();
      res[r].out = y.detach();
      res[r].x_grad = xr.grad().clone();
      collect(*m, res[r]);
    });
    for (const auto& rr : res) {
      REQUIRE(close_to(rr.out, ref.detach(), 1e-5));
      REQUIRE(close_to(rr.x_grad, x.grad(), 1e-5));
    }
    check_against(*full, res, 1, 1e-5);
  }
}

TEST_CASE("GPT: tp = 2, 4 logits, loss and gradients equal tp = 1 (tied and untied head)", "[parallel][tp][gpt]") {
  at::set_num_threads(1);
  for (bool tied : {true, false}) {
    for (int64_t t : {2, 4}) {
      models::ModelConfig cfg;
      cfg.n_layer = 2, cfg.d_model = 32, cfg.n_head = 4, cfg.vocab_size = 50, cfg.max_seq_len = 16;
      cfg.tie_embeddings = tied;
      auto full_ptr = std::make_shared<models::Gpt>(cfg);  // modules() needs a shared_ptr-held top module
      auto& full = *full_ptr;
      full.init_weights(42);
      at::manual_seed(3);
      auto ids = at::randint(0, 50, {2, 12}, at::kLong), targets = at::randint(0, 50, {2, 12}, at::kLong);
      auto ref = full.forward(ids);
      auto ref_loss = at::cross_entropy_loss(ref.view({-1, 50}), targets.view({-1}));
      ref_loss.backward();
      std::vector<RankResult> res(t);
      std::vector<double> losses(t);
      testing::run_ranks(t, [&](int64_t r, std::shared_ptr<ProcessGroup> g) {
        auto mp = std::make_shared<models::Gpt>(cfg);
        auto& m = *mp;
        m.init_weights(42);
        parallel::TensorParallelOptions o;
        o.vocab_multiple = 8;
        auto plan = parallel::parallelize(m, g, o);
        auto logits = m.forward(ids);
        auto loss = parallel::vocab_parallel_cross_entropy_mean(logits, targets, plan.vocab, *g);
        loss.backward();
        plan.sync_grads();
        res[r].out = logits.detach();
        res[r].vocab = plan.vocab;
        losses[r] = loss.item<double>();
        collect(m, res[r]);
      });
      INFO("tied = " << tied << ", tp = " << t);
      for (int64_t r = 0; r < t; ++r) {
        const auto& vs = res[r].vocab;
        auto expect = at::constant_pad_nd(ref.detach(), {0, vs.padded - 50}).narrow(-1, vs.start, vs.local());
        REQUIRE(close_to(res[r].out, expect, 1e-5));
        REQUIRE(std::abs(losses[r] - ref_loss.item<double>()) < 1e-6);
      }
      check_against(full, res, cfg.head_dim(), 1e-5);
    }
  }
}

TEST_CASE("GPT: 20 training steps with clipping give the same losses and grad norms at tp = 1, 2, 4",
          "[parallel][tp][gpt][train]") {
  at::set_num_threads(1);
  models::ModelConfig cfg;
  cfg.n_layer = 2, cfg.d_model = 32, cfg.n_head = 4, cfg.vocab_size = 50, cfg.max_seq_len = 16;
  const int64_t steps = 20;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  // Learnable data: each row follows x[i+1] = (7 x[i] + 3) mod 50 from a random start.
  auto data = at::empty({steps, 4, 13}, at::kLong);
  {
    auto start = at::randint(0, 50, {steps, 4}, gen, at::kLong);
    auto d = data.accessor<int64_t, 3>();
    auto st = start.accessor<int64_t, 2>();
    for (int64_t s = 0; s < steps; ++s)
      for (int64_t b = 0; b < 4; ++b) {
        d[s][b][0] = st[s][b];
        for (int64_t i = 1; i < 13; ++i) d[s][b][i] = (7 * d[s][b][i - 1] + 3) % 50;
      }
  }
  auto train = [&](int64_t t) {
    std::vector<double> losses(steps), norms(steps);
    testing::run_ranks(t, [&](int64_t r, std::shared_ptr<ProcessGroup> g) {
      auto mp = std::make_shared<models::Gpt>(cfg);
      auto& m = *mp;
      m.init_weights(42);
      parallel::TensorParallelOptions o;
      o.vocab_multiple = 8;
      auto plan = parallel::parallelize(m, g, o);
      auto params = m.parameters();
      torch::optim::AdamW opt(params, torch::optim::AdamWOptions(3e-3).weight_decay(0.1));
      for (int64_t s = 0; s < steps; ++s) {
        auto ids = data[s].narrow(1, 0, 12), targets = data[s].narrow(1, 1, 12);
        auto logits = m.forward(ids);
        auto loss = t == 1 ? at::cross_entropy_loss(logits.view({-1, 50}), targets.reshape({-1}))
                           : parallel::vocab_parallel_cross_entropy_mean(logits, targets, plan.vocab, *g);
        opt.zero_grad();
        loss.backward();
        plan.sync_grads();
        const double norm = plan.clip_grad_norm(params, 0.5);  // binding: norms are ~1-3 here
        opt.step();
        if (r == 0) losses[s] = loss.item<double>(), norms[s] = norm;
      }
    });
    return std::make_pair(losses, norms);
  };
  auto [l1, n1] = train(1);
  REQUIRE(l1.back() < l1.front() - 0.1);  // it learns
  for (int64_t t : {2, 4}) {
    auto [lt, nt] = train(t);
    for (int64_t s = 0; s < steps; ++s) {
      INFO("tp = " << t << ", step " << s);
      REQUIRE(std::abs(lt[s] - l1[s]) <= 1e-4 * std::abs(l1[s]));
      REQUIRE(std::abs(nt[s] - n1[s]) <= 1e-4 * std::abs(n1[s]));
    }
  }
}

TEST_CASE("sequence parallelism: a transformer block on sequence shards equals the full block",
          "[parallel][tp][sp]") {
  at::set_num_threads(1);
  for (int64_t t : {2, 4}) {
    models::ModelConfig cfg;
    cfg.d_model = 32, cfg.n_head = 4, cfg.max_seq_len = 16;
    models::GptBlock full(cfg);
    randomize(*full, 13);
    at::manual_seed(4);
    auto x0 = at::randn({2, 8, 32}), up = at::randn({2, 8, 32});
    auto x = x0.clone().requires_grad_();
    auto ref = full(x);
    (ref * up).sum().backward();
    std::vector<RankResult> res(t);
    testing::run_ranks(t, [&](int64_t r, std::shared_ptr<ProcessGroup> g) {
      models::GptBlock b(cfg);
      randomize(*b, 13);
      parallel::TensorParallelOptions o;
      o.sequence_parallel = true;
      auto plan = parallel::parallelize(*b, g, o);
      auto xr = x0.chunk(t, 1)[r].clone().requires_grad_();
      auto y = b(xr);
      (y * up.chunk(t, 1)[r]).sum().backward();
      plan.sync_grads();
      res[r].out = y.detach();
      res[r].x_grad = xr.grad().clone();
      collect(*b, res[r]);
    });
    INFO("tp = " << t);
    for (int64_t r = 0; r < t; ++r) {
      REQUIRE(close_to(res[r].out, ref.detach().chunk(t, 1)[r], 1e-5));
      REQUIRE(close_to(res[r].x_grad, x.grad().chunk(t, 1)[r], 1e-5));
    }
    check_against(*full, res, cfg.head_dim(), 1e-5);  // norms and row biases: summed partial grads
  }
}
