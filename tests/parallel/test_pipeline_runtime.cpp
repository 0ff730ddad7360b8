// The pipeline runtime on a tiny GPT-2, with pipeline ranks as threads of this process (a
// point-to-point ProcessGroup over a mailbox): pp = 2 and 4 under GPipe, 1F1B and interleaved 1F1B
// give the per-step losses and gradients of the unsplit model, and the tied embedding stays equal
// on the first and last rank.
#include <catch2/catch.hpp>

#include <map>
#include <thread>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "models/language_model.hpp"
#include "parallel/pipeline_runtime.hpp"
#include "test_pipeline_local_group.hpp"
#include "trainer/pipeline_stage.hpp"
#include "trainer/pipeline_train.hpp"

using namespace strata;

namespace {

constexpr int64_t kSeed = 7, kMicro = 2, kSeq = 8, kM = 4, kSteps = 3;
constexpr double kLr = 0.05;

std::string g_arch = "gpt";  // the architecture the helpers below build

models::ModelConfig tiny_gpt() {
  models::ModelConfig c;
  c.arch = g_arch;
  if (g_arch == "llama") {  // GQA, SwiGLU, RMSNorm, RoPE, untied head, no biases
    c.n_kv_head = 2;
    c.multiple_of = 16;
    c.bias = false;
    c.tie_embeddings = false;
  }
  c.n_layer = 8;
  c.d_model = 32;
  c.n_head = 4;
  c.vocab_size = 50;
  c.max_seq_len = kSeq;
  return c;
}

std::shared_ptr<models::LanguageModel> build(const models::ModelConfig& cfg) {
  auto m = models::make_model(cfg);
  m->init_weights(kSeed);
  return m;
}

std::vector<data::Batch> batches_for(int64_t step) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + step);
  std::vector<data::Batch> out;
  for (int64_t mb = 0; mb < kM; ++mb) {
    auto ids = at::randint(0, 50, {kMicro, kSeq + 1}, gen, at::kLong);
    out.push_back({ids.narrow(1, 0, kSeq).contiguous(), ids.narrow(1, 1, kSeq).contiguous(), {}, {}, {}});
  }
  return out;
}

struct Trace {
  std::vector<double> losses;                    // per step
  std::map<std::string, at::Tensor> first_grads;  // step 0's gradients by parameter name
  std::map<std::string, at::Tensor> final_params;
};

void sgd(const std::vector<std::pair<std::string, at::Tensor>>& params) {
  torch::NoGradGuard ng;
  for (const auto& [_, p] : params)
    if (p.grad().defined()) {
      p.sub_(p.grad() * kLr);
      p.mutable_grad().zero_();
    }
}

Trace reference() {
  auto model = build(tiny_gpt());
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& kv : model->named_parameters()) params.emplace_back(kv.key(), kv.value());
  Trace tr;
  for (int64_t step = 0; step < kSteps; ++step) {
    double loss_sum = 0;
    for (const auto& b : batches_for(step)) {
      auto logits = model->forward(b.inputs);
      auto loss = at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), b.targets.view({-1})) / double(kM);
      loss.backward();
      loss_sum += loss.item<double>();
    }
    tr.losses.push_back(loss_sum);
    if (step == 0)
      for (auto& [n, p] : params) tr.first_grads[n] = p.grad().clone();
    sgd(params);
  }
  for (auto& [n, p] : params) tr.final_params[n] = p.detach().clone();
  return tr;
}

// Runs p pipeline ranks as threads; returns what each rank saw.
std::vector<Trace> pipelined(parallel::PipeScheduleKind kind, int64_t p, int64_t v, const std::string& pp_layers = "") {
  auto hub = std::make_shared<test::LocalHub>();
  std::vector<Trace> traces(p);
  std::vector<std::string> errors(p);
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < p; ++r)
    threads.emplace_back([&, r] {
      try {
        auto model = build(tiny_gpt());
        auto parts = trainer::pipeline_parts(*model, p * v, pp_layers);
        std::vector<std::pair<std::string, at::Tensor>> params;
        for (auto& kv : model->named_parameters())
          if (trainer::pipeline_holds(*model, kv.key(), parts, p, r)) params.emplace_back(kv.key(), kv.value());
        auto group = std::make_shared<test::LocalGroup>(r, p, hub);
        parallel::PipeRuntime rt(parallel::make_schedule(kind, p, kM, v), group, {kMicro, kSeq, 32}, at::TensorOptions().dtype(at::kFloat));
        trainer::ModelPipeStage stage(*model, parts, at::kCPU);
        auto tied = trainer::pipeline_tied_params(*model, p);
        for (int64_t step = 0; step < kSteps; ++step) {
          stage.set_batches(batches_for(step));
          auto res = rt.run_step(stage);
          double loss_sum = 0;
          for (const auto& l : res.losses) loss_sum += l.item<double>();
          traces[r].losses.push_back(parallel::broadcast_from_last(*group, loss_sum));
          std::vector<at::Tensor> tied_grads;
          for (auto& [n, t] : params)
            if (std::find(tied.begin(), tied.end(), n) != tied.end()) tied_grads.push_back(t.mutable_grad());
          parallel::sum_between_pipeline_ends(*group, tied_grads);
          if (step == 0)
            for (auto& [n, t] : params) traces[r].first_grads[n] = t.grad().clone();
          sgd(params);
        }
        for (auto& [n, t] : params) traces[r].final_params[n] = t.detach().clone();
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int64_t r = 0; r < p; ++r) {
    INFO("rank " << r << ": " << errors[r]);
    REQUIRE(errors[r].empty());
  }
  return traces;
}

void require_equal(const Trace& ref, const std::vector<Trace>& ranks) {
  std::map<std::string, int> holders;
  for (size_t r = 0; r < ranks.size(); ++r) {
    REQUIRE(ranks[r].losses.size() == ref.losses.size());
    for (size_t s = 0; s < ref.losses.size(); ++s) {
      INFO("rank " << r << " step " << s);
      REQUIRE(ranks[r].losses[s] == Approx(ref.losses[s]).epsilon(1e-5));
    }
    for (const auto& [n, g] : ranks[r].first_grads) {
      INFO("rank " << r << " grad of " << n);
      REQUIRE(g.defined());
      REQUIRE(at::allclose(g, ref.first_grads.at(n), 1e-5, 1e-6));
      holders[n]++;
    }
    for (const auto& [n, w] : ranks[r].final_params) {
      INFO("rank " << r << " param " << n);
      REQUIRE(at::allclose(w, ref.final_params.at(n), 1e-5, 1e-6));
    }
  }
  // Every parameter is trained somewhere.
  for (const auto& [n, _] : ref.final_params) {
    INFO(n);
    REQUIRE(holders[n] >= 1);
  }
}

}  // namespace

TEST_CASE("pipeline runtime: pp = 2 and 4 equal pp = 1 for every schedule (tiny GPT-2 and Llama)", "[pipeline][runtime]") {
  at::set_num_threads(1);
  g_arch = GENERATE(as<std::string>{}, "gpt", "llama");
  INFO("arch " << g_arch);
  const Trace ref = reference();
  REQUIRE(ref.losses[2] < ref.losses[0]);  // the model learns, so the comparison is not vacuous
  SECTION("gpipe") {
    require_equal(ref, pipelined(parallel::PipeScheduleKind::GPipe, 2, 1));
    require_equal(ref, pipelined(parallel::PipeScheduleKind::GPipe, 4, 1));
  }
  SECTION("1f1b") {
    require_equal(ref, pipelined(parallel::PipeScheduleKind::OneFOneB, 2, 1));
    require_equal(ref, pipelined(parallel::PipeScheduleKind::OneFOneB, 4, 1));
  }
  SECTION("interleaved") {
    require_equal(ref, pipelined(parallel::PipeScheduleKind::Interleaved, 2, 2));
    require_equal(ref, pipelined(parallel::PipeScheduleKind::Interleaved, 4, 2));
  }
  SECTION("explicit uneven layers") { require_equal(ref, pipelined(parallel::PipeScheduleKind::OneFOneB, 4, 1, "1,3,3,1")); }
}

TEST_CASE("pipeline runtime: the tied embedding stays identical on the first and last rank", "[pipeline][runtime]") {
  at::set_num_threads(1);
  g_arch = "gpt";
  auto ranks = pipelined(parallel::PipeScheduleKind::OneFOneB, 4, 1);
  std::string tied;
  for (const auto& [n, _] : ranks[0].final_params)
    if (ranks[3].final_params.count(n)) tied = n;
  REQUIRE(tied.find("tok_emb") != std::string::npos);
  REQUIRE(at::equal(ranks[0].final_params.at(tied), ranks[3].final_params.at(tied)));
  // Middle ranks hold neither the embedding nor the head.
  for (const auto& [n, _] : ranks[1].final_params) REQUIRE(n.rfind("blocks.", 0) == 0);
}

TEST_CASE("pipeline partition of a GPT: embeddings first, head last, balanced blocks", "[pipeline]") {
  g_arch = "gpt";
  auto model = build(tiny_gpt());
  auto parts = trainer::pipeline_parts(*model, 4, "");
  REQUIRE(parts.front().begin == 0);
  REQUIRE(parts.back().end == 8);
  for (size_t i = 1; i < parts.size(); ++i) REQUIRE(parts[i].begin == parts[i - 1].end);
  // Equal blocks; the first chunk carries the embeddings, the last the tied head's matmul, so the
  // middle chunks take at least as many layers as the ends.
  REQUIRE(parts[1].size() >= parts[0].size());
  REQUIRE(parts[2].size() >= parts[3].size());
  REQUIRE(trainer::pipeline_parts(*model, 4, "2,2,2,2") == std::vector<parallel::LayerRange>{{0, 2}, {2, 4}, {4, 6}, {6, 8}});
}

TEST_CASE("pipeline partition by FLOPs: attention's per-layer cost moves layers off the head's chunk", "[pipeline]") {
  g_arch = "gpt";
  auto cfg = tiny_gpt();
  cfg.vocab_size = 2000;  // a tied head worth about five layers of matmul FLOPs
  auto model = build(cfg);
  auto by_flops = trainer::pipeline_parts(*model, 2, "flops", /*seq_len=*/8);
  REQUIRE(by_flops.front().begin == 0);
  REQUIRE(by_flops.back().end == 8);
  REQUIRE(by_flops[0].end == by_flops[1].begin);
  // Embedding lookups cost no FLOPs while the tied head's matmul does, so the first chunk takes
  // 6 of 8 layers; by parameters the embedding's rows weigh on the first chunk as much as the head
  // on the last, so the split is even.
  REQUIRE(by_flops == std::vector<parallel::LayerRange>{{0, 6}, {6, 8}});
  REQUIRE(trainer::pipeline_parts(*model, 2, "params") == std::vector<parallel::LayerRange>{{0, 4}, {4, 8}});
  REQUIRE_THROWS_WITH(trainer::pipeline_parts(*model, 2, "flops"), Catch::Contains("train.seq_len"));
  REQUIRE_THROWS_WITH(trainer::pipeline_parts(*model, 2, "3,3"), Catch::Contains("sum"));
}

TEST_CASE("pipeline training refuses what it does not run, naming the recipe keys", "[pipeline]") {
  trainer::RunConfig cfg;
  cfg.model = tiny_gpt();
  cfg.parallel.pp = 2;
  cfg.train.grad_accum = 4;
  REQUIRE_NOTHROW(trainer::check_pipeline_supported(cfg));
  auto refused = [&](auto edit, const std::string& words) {
    trainer::RunConfig c = cfg;
    edit(c);
    REQUIRE_THROWS_WITH(trainer::check_pipeline_supported(c), Catch::Contains(words));
  };
  refused([](auto& c) { c.parallel.zero1 = true; }, "parallel.zero1");
  {  // tensor parallelism composes with the pipeline (tests/parallel/mp_3d.sh checks it against one process)
    trainer::RunConfig c = cfg;
    c.parallel.tp = 2;
    c.parallel.sequence_parallel = true;
    REQUIRE_NOTHROW(trainer::check_pipeline_supported(c));
  }
  {  // reweighting runs on the last stage (tests/parallel/mp_reweight.sh checks it against pp = 1)
    trainer::RunConfig c = cfg;
    c.reweighting.strategy = "linupper";
    REQUIRE_NOTHROW(trainer::check_pipeline_supported(c));
  }
  {  // Sophia-G's curvature refresh runs through the schedule (tests/parallel/mp_sophia_pp.sh)
    trainer::RunConfig c = cfg;
    c.optim.name = "sophia";
    REQUIRE_NOTHROW(trainer::check_pipeline_supported(c));
  }
  refused([](auto& c) { c.optim.name = "sophia", c.optim.hessian_estimator = "hutchinson"; }, "optim.hessian_estimator");
  refused([](auto& c) { c.parallel.virtual_stages = 2; }, "parallel.schedule = interleaved");
  refused([](auto& c) { c.parallel.schedule = "interleaved"; }, "parallel.virtual_stages >= 2");
  refused([](auto& c) { c.parallel.schedule = "interleaved", c.parallel.virtual_stages = 2, c.train.grad_accum = 3; },
          "train.grad_accum");
  refused([](auto& c) { c.parallel.pp = 4, c.parallel.schedule = "interleaved", c.parallel.virtual_stages = 4; }, "model.n_layer");
  cfg.parallel.pp = 1;
  cfg.parallel.zero1 = true;
  REQUIRE_NOTHROW(trainer::check_pipeline_supported(cfg));  // pp = 1: nothing to refuse
}
