// Sophia-H's double backward under tensor parallelism (parallel/tp_hutchinson.hpp), on in-process
// ranks (Gloo groups of threads; a FakeGroup tp x dp mesh for ZeRO-1):
//   - the twice-differentiable vocab-parallel cross-entropy: value, gradient and Hessian-vector
//     product in the logits equal the whole-vocabulary ones (tp = 2, 4);
//   - the probes of a tp rank are its slices of the tp = 1 probes (exactly), and the model's H u and
//     the Hutchinson refresh's estimate u * (H u) at tp = 2, 4 equal tp = 1 to ~1e-5 relative: GPT,
//     and Llama with one KV head shared by all ranks under sequence parallelism;
//   - (tp, dp) = (2, 2) with ZeRO-1: the refreshed curvature and the losses equal one process.
// The 20-step Sophia-H training comparison lives beside Sophia-G's in test_tensor_parallel_sophia.cpp.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/blocks/attention.hpp"
#include "models/language_model.hpp"
#include "optim/hessian.hpp"
#include "optim/optimizer.hpp"
#include "optim/sophia.hpp"
#include "optim/zero1.hpp"
#include "parallel/data_parallel.hpp"
#include "parallel/parallelize.hpp"
#include "parallel/tensor_parallel_ops.hpp"
#include "parallel/tp_hutchinson.hpp"
#include "parallel/vocab_parallel.hpp"
#include "tests/parallel/fake_group.hpp"
#include "tests/parallel/tp_optimizer_setup.hpp"
#include "tests/support/gloo_ranks.hpp"
#include "tests/support/learnable_rows.hpp"

using namespace strata;

namespace {

constexpr int64_t kVocab = 50, kBatch = 4, kLen = 12;

models::ModelConfig tiny(const std::string& arch) {
  models::ModelConfig c;
  c.arch = arch;
  c.n_layer = 2, c.d_model = 32, c.n_head = 4, c.vocab_size = kVocab, c.max_seq_len = 16;
  if (arch == "llama") c.n_kv_head = 1, c.multiple_of = 16, c.bias = false, c.tie_embeddings = false;
  return c;
}


using testing::learnable_rows;

using Named = std::vector<std::pair<std::string, at::Tensor>>;

// The largest |got - ref| over the largest |ref| (at least `floor`).
double rel_diff(const at::Tensor& got, const at::Tensor& ref, double floor = 1e-30) {
  REQUIRE(got.sizes() == ref.sizes());
  return (got.to(at::kDouble) - ref.to(at::kDouble)).abs().max().item<double>() /
         std::max(ref.abs().max().item<double>(), floor);
}

// 1e-4 of the largest |value| over all tensors: a tensor whose exact value is zero (the key bias's
// curvature: softmax ignores a shift shared by all keys) holds only rounding noise, compared to that.
double floor_of(const std::map<std::string, at::Tensor>& ref) {
  double top = 0;
  for (const auto& [_, v] : ref) top = std::max(top, v.abs().max().item<double>());
  return 1e-4 * top;
}

// A rank's tensor laid out like parameter p, as the full tp = 1 tensor (collective over tp).
at::Tensor full_of(const parallel::TensorParallelPlan& plan, const at::Tensor& p, const at::Tensor& local) {
  const auto* l = plan.layout_of(p);
  return l ? plan.full_from_local(local, *l) : local;
}

struct Hvp {
  std::map<std::string, at::Tensor> u, hv, estimate;  // full tp = 1 shapes
};

// H u of the model's mean cross-entropy at tp (1: no parallelism), and the Hutchinson refresh's
// estimate (Sophia with b2 = 0 keeps hc = u * (H u)) over two micro-batches of the same rows.
Hvp hvp_at(const models::ModelConfig& cfg, int64_t tp, bool sp, const std::string& probe) {
  Hvp out;
  const auto data = learnable_rows(1, kBatch, kLen, kVocab)[0];
  const auto inputs = data.narrow(1, 0, kLen), targets = data.narrow(1, 1, kLen);
  auto body = [&](int r, parallel::ProcessGroup* pg) {
    auto m = models::make_model(cfg);
    m->init_weights(42);
    parallel::TensorParallelPlan plan;
    if (tp > 1) {
      std::shared_ptr<parallel::ProcessGroup> group(pg, [](parallel::ProcessGroup*) {});
      parallel::TensorParallelOptions o;
      o.vocab_multiple = 8;
      o.sequence_parallel = sp;
      plan = parallel::parallelize(*m, group, o);
    }
    Named named;
    std::vector<at::Tensor> params;
    for (const auto& kv : m->named_parameters()) named.emplace_back(kv.key(), kv.value()), params.push_back(kv.value());
    auto loss_of = [&](const at::Tensor& ids, const at::Tensor& tgt) {
      auto logits = m->forward(ids);
      return tp > 1 ? parallel::vocab_parallel_cross_entropy_mean(logits, tgt, plan.vocab, *pg, -100, true)
                    : at::cross_entropy_loss(logits.reshape({-1, kVocab}), tgt.reshape({-1}));
    };
    optim::RefreshComm comm;
    if (tp > 1) {
      parallel::use_tensor_parallel_hutchinson(comm, plan);
      comm.sync = [&] { plan.sync_grads(); };
    }
    // H u, completed like a gradient (sync_grads sums the partial ones).
    auto u = optim::hutchinson_probes(params, 1234, probe, comm.probe_slice);
    auto hv = optim::hessian_vector_product(loss_of(inputs, targets), params, u, comm.hvp_dot);
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = hv[i].clone();
    if (comm.sync) comm.sync();
    std::map<std::string, at::Tensor> u_full, hv_full, est_full;
    for (size_t i = 0; i < params.size(); ++i) {
      u_full[named[i].first] = tp > 1 ? full_of(plan, params[i], u[i]) : u[i];
      hv_full[named[i].first] = tp > 1 ? full_of(plan, params[i], params[i].grad()) : params[i].grad().clone();
    }
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    // The refresh itself (Sophia, b2 = 0): hc = u * (H u) of the mean over two half-batches.
    optim::OptimConfig oc;
    oc.name = "sophia", oc.betas = {0.965, 0.0}, oc.hessian_interval = 1, oc.hessian_estimator = "hutchinson";
    oc.hutchinson_probe = probe;
    auto opt = optim::make_optimizer(oc, optim::make_param_groups(named, 0.0));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
    optim::refresh_hutchinson(
        *opt, params, 2, [&](int64_t a) { return loss_of(inputs.narrow(0, 2 * a, 2), targets.narrow(0, 2 * a, 2)); },
        gen, probe, comm);
    const auto state = opt->state();
    for (size_t i = 0; i < params.size(); ++i) {  // parameter order: the same gathers on every rank
      const auto& v = state.at("sophia.hc." + named[i].first);
      est_full[named[i].first] = tp > 1 ? full_of(plan, params[i], v) : v.clone();
    }
    if (r == 0) out.u = u_full, out.hv = hv_full, out.estimate = est_full;
  };
  if (tp == 1) body(0, nullptr);
  else testing::run_gloo_ranks(static_cast<int>(tp), [&](int r, parallel::ProcessGroup& pg) { body(r, &pg); });
  return out;
}

}  // namespace

TEST_CASE("the twice-differentiable vocab-parallel cross-entropy: value, gradient and H v equal the whole vocabulary",
          "[parallel][tp][sophia][hutchinson]") {
  auto full = (at::randn({16, kVocab}, at::kDouble) * 2).to(at::kFloat);
  auto targets = at::randint(0, kVocab, {16}, at::kLong);
  targets[3] = -100;  // ignored
  auto v = at::randn({16, kVocab});
  // Whole vocabulary: loss, gradient and the Hessian-vector product in the logits.
  auto zf = full.clone().requires_grad_(true);
  auto lf = at::cross_entropy_loss(zf, targets);
  auto gf = torch::autograd::grad({lf}, {zf}, {}, true, true)[0];
  auto hf = torch::autograd::grad({(gf * v).sum()}, {zf})[0];
  for (int64_t t : {2, 4}) {
    std::vector<double> loss(t);
    std::vector<at::Tensor> grad(t), hv(t);
    std::vector<parallel::VocabShard> shards(t);
    testing::run_gloo_ranks(static_cast<int>(t), [&](int r, parallel::ProcessGroup& pg) {
      const auto s = parallel::vocab_shard(kVocab, t, r, 8);
      shards[r] = s;
      auto local = at::zeros({16, s.local()});
      auto local_v = at::zeros({16, s.local()});
      const int64_t real = std::max<int64_t>(0, std::min(s.end, kVocab) - s.start);
      if (real > 0) {
        local.narrow(1, 0, real).copy_(full.narrow(1, s.start, real));
        local_v.narrow(1, 0, real).copy_(v.narrow(1, s.start, real));
      }
      auto z = local.requires_grad_(true);
      auto l = parallel::vocab_parallel_cross_entropy_mean(z, targets, s, pg, -100, true);
      // The fused cross-entropy gives the same value.
      auto fused = parallel::vocab_parallel_cross_entropy_mean(z.detach(), targets, s, pg);
      CHECK(l.item<double>() == Approx(fused.item<double>()).epsilon(1e-6));
      auto g = torch::autograd::grad({l}, {z}, {}, true, true)[0];
      auto dot = parallel::reduce_from_tp_region((g * local_v).sum().reshape({1}), pg);  // <g, v> of the whole vocabulary
      auto h = torch::autograd::grad({dot}, {z})[0];
      loss[r] = l.item<double>(), grad[r] = g.detach(), hv[r] = h;
    });
    for (int64_t r = 0; r < t; ++r) {
      INFO("tp " << t << " rank " << r);
      const auto& s = shards[r];
      CHECK(loss[r] == Approx(lf.item<double>()).epsilon(1e-6));
      const int64_t real = std::max<int64_t>(0, std::min(s.end, kVocab) - s.start);
      if (real > 0) {
        CHECK(rel_diff(grad[r].narrow(1, 0, real), gf.detach().narrow(1, s.start, real)) < 1e-6);
        CHECK(rel_diff(hv[r].narrow(1, 0, real), hf.narrow(1, s.start, real)) < 1e-5);
      }
      if (real < s.local()) CHECK(hv[r].narrow(1, real, s.local() - real).abs().max().item<double>() == 0.0);
    }
  }
}

TEST_CASE("Hutchinson at tp = 2, 4: probes are slices of tp = 1's, H u and u * (H u) equal tp = 1",
          "[parallel][tp][sophia][hutchinson]") {
  models::MathAttentionScope math;
  struct Case {
    std::string arch;
    bool sp;
    std::string probe;
  };
  for (const Case& c : {Case{"gpt", false, "rademacher"}, Case{"llama", true, "rademacher"}, Case{"gpt", true, "gaussian"}}) {
    const auto cfg = tiny(c.arch);
    const auto ref = hvp_at(cfg, 1, false, c.probe);
    for (int64_t tp : {2, 4}) {
      DYNAMIC_SECTION(c.arch << (c.sp ? " sp " : " ") << c.probe << " tp " << tp) {
        const auto got = hvp_at(cfg, tp, c.sp, c.probe);
        REQUIRE(got.hv.size() == ref.hv.size());
        REQUIRE(got.estimate.size() == ref.estimate.size());
        double worst_hv = 0, worst_est = 0, nonzero = 0;
        std::string worst_name;
        const double floor_hv = floor_of(ref.hv), floor_est = floor_of(ref.estimate);
        for (const auto& [name, r] : ref.hv) {
          INFO(name);
          REQUIRE(at::equal(got.u.at(name), ref.u.at(name)));  // the same probe, element for element
          const double d = rel_diff(got.hv.at(name), r, floor_hv);
          if (d > worst_hv) worst_name = name;
          worst_hv = std::max(worst_hv, d);
          worst_est = std::max(worst_est, rel_diff(got.estimate.at(name), ref.estimate.at(name), floor_est));
          nonzero += r.abs().sum().item<double>() > 0;
        }
        WARN(c.arch << " tp " << tp << ": max rel diff H u " << worst_hv << " (" << worst_name << "), u * (H u) " << worst_est);
        CHECK(nonzero == static_cast<double>(ref.hv.size()));  // every parameter has curvature here
        CHECK(worst_hv < 1e-5);
        CHECK(worst_est < 1e-5);
      }
    }
  }
}

namespace {

struct ZeroRun {
  std::vector<double> loss;                // dp-averaged, per step
  std::map<std::string, at::Tensor> hc;    // after the first refresh, tp = 1 shapes
};

// Sophia-H for `steps` steps with refresh interval k on a tp x dp mesh; zero1: the optimizer state
// split over dp (the refresh's estimate reduce-scattered into the pieces, then the tp sums on them).
// Micro-batch a of dp rank d takes row 2a + d of the refresh batch (dp = 1: rows 2a, 2a + 1), so every
// layout averages the same rows.
ZeroRun sophia_h_mesh(const models::ModelConfig& cfg, int64_t tp, int64_t dp, bool zero1, bool sp, int64_t steps,
                      int64_t k) {
  ZeroRun out{std::vector<double>(steps), {}};
  const auto data = learnable_rows(steps, kBatch, kLen, kVocab);
  const auto refresh = learnable_rows(2 * steps, kBatch, kLen, kVocab).narrow(0, steps, steps);
  testing::run_mesh(tp, dp, [&](int64_t r, int64_t d, std::shared_ptr<parallel::ProcessGroup> tpg,
                                std::shared_ptr<parallel::ProcessGroup> dpg) {
    auto m = models::make_model(cfg);
    m->init_weights(42);
    parallel::TensorParallelOptions o;
    o.vocab_multiple = 8;
    o.sequence_parallel = sp;
    auto plan = parallel::parallelize(*m, tpg, o);
    Named named;
    std::vector<at::Tensor> params;
    for (const auto& kv : m->named_parameters()) named.emplace_back(kv.key(), kv.value()), params.push_back(kv.value());
    optim::OptimConfig oc;
    oc.name = "sophia", oc.betas = {0.965, 0.99}, oc.rho = 0.05, oc.hessian_interval = k, oc.weight_decay = 0.2;
    oc.hessian_estimator = "hutchinson";
    auto [reducer, opt, pieces, owners] = testing::make_tp_optimizer(named, oc, dpg, dp, zero1);
    opt->set_tokens_per_step(static_cast<double>(kBatch * kLen));
    auto ce = [&](const at::Tensor& ids, const at::Tensor& tgt, bool twice) {
      auto logits = m->forward(ids);
      return tp == 1 ? at::cross_entropy_loss(logits.reshape({-1, kVocab}), tgt.reshape({-1}))
                     : parallel::vocab_parallel_cross_entropy_mean(logits, tgt, plan.vocab, *tpg, -100, twice);
    };
    auto sync = [&] {
      if (zero1) plan.sync_grad_pieces(pieces, owners);
      else plan.sync_grads();
    };
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    const int64_t rows = kBatch / dp;
    for (int64_t s = 0; s < steps; ++s) {
      auto batch = data[s].narrow(0, d * rows, rows);
      if (reducer) reducer->set_sync(true);
      auto loss = ce(batch.narrow(1, 0, kLen), batch.narrow(1, 1, kLen), false);
      loss.backward();
      if (reducer) reducer->finish();
      sync();
      if (zero1) plan.clip_grad_norm_pieces(pieces, owners, *dpg, 1.0);
      else plan.clip_grad_norm(params, 1.0);
      opt->step(3e-3);
      opt->zero_grad();
      auto l = loss.detach().reshape({1}).clone();
      dpg->all_reduce(l, parallel::ReduceOp::Avg)->wait();
      if (r == 0 && d == 0) out.loss[s] = l.item<double>();
      if (!optim::hessian_refresh_due(s, k)) continue;
      auto comm = optim::data_parallel_refresh(*opt, reducer.get());
      comm.sync = sync;
      parallel::use_tensor_parallel_hutchinson(comm, plan);
      const auto rb = refresh[s];
      auto micro = [&](int64_t a) { return dp == 1 ? rb.narrow(0, 2 * a, 2) : rb.narrow(0, 2 * a + d, 1); };
      optim::refresh_hutchinson(
          *opt, params, 2, [&](int64_t a) { return ce(micro(a).narrow(1, 0, kLen), micro(a).narrow(1, 1, kLen), true); },
          gen, "rademacher", comm);
      if (s != k - 1) continue;
      const auto state = opt->state();  // collective over dp under ZeRO-1
      for (size_t i = 0; i < params.size(); ++i) {
        auto full = full_of(plan, params[i], state.at("sophia.hc." + named[i].first));
        if (r == 0 && d == 0) out.hc[named[i].first] = full.clone();
      }
    }
  });
  return out;
}

}  // namespace

TEST_CASE("Sophia-H with (tp, dp) = (2, 2) and ZeRO-1 equals one process: curvature and losses",
          "[parallel][tp][sophia][hutchinson][zero1]") {
  models::MathAttentionScope math;
  constexpr int64_t kSteps = 6, kK = 2;
  for (const auto& [arch, sp] : {std::pair<std::string, bool>{"gpt", false}, {"llama", true}}) {
    DYNAMIC_SECTION(arch << (sp ? " sp" : "")) {
      const auto cfg = tiny(arch);
      const auto ref = sophia_h_mesh(cfg, 1, 1, false, false, kSteps, kK);
      const auto got = sophia_h_mesh(cfg, 2, 2, true, sp, kSteps, kK);
      REQUIRE(got.hc.size() == ref.hc.size());
      double worst_hc = 0, worst_loss = 0;
      for (const auto& [name, v] : ref.hc) {
        INFO(name);
        REQUIRE(v.abs().max().item<double>() > 0);
        worst_hc = std::max(worst_hc, rel_diff(got.hc.at(name), v, floor_of(ref.hc)));
      }
      for (int64_t s = 0; s <= kK; ++s)
        worst_loss = std::max(worst_loss, std::abs(got.loss[s] - ref.loss[s]) / std::abs(ref.loss[s]));
      WARN(arch << ": (tp, dp) = (2, 2) ZeRO-1 vs one process: hc max rel diff " << worst_hc << ", loss through step k "
                << worst_loss);
      CHECK(worst_hc < 1e-5);
      CHECK(worst_loss < 1e-6);
    }
  }
}
