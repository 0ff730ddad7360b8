// Sparse training under tensor parallelism and ZeRO-1, on in-process ranks (threads over
// FakeGroups in a tp x dp mesh; Gloo thread ranks for the checkpoint gather):
//   - tp layouts from the TensorParallelPlan (KV heads shared by two tp ranks count once);
//   - ties: an all-equal matrix prunes the lowest full-matrix indices, for any split;
//   - 20 training steps of static random (SPDF) and gradual magnitude pruning at tp = 2, at
//     (tp, dp) = (1, 2) and (2, 2) with ZeRO-1, equal tp = 1 / dp = 1: losses to 1e-5, masks
//     (gathered to full matrices) and sparsity equal; ZeRO-1 moments are zero at pruned entries.
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <catch2/catch.hpp>

#include "models/language_model.hpp"
#include "optim/optimizer.hpp"
#include "optim/zero1.hpp"
#include "parallel/data_parallel.hpp"
#include "parallel/parallelize.hpp"
#include "parallel/vocab_parallel.hpp"
#include "sparsity/masks.hpp"
#include "sparsity/select.hpp"
#include "sparsity/sparsifier.hpp"
#include "tests/parallel/fake_group.hpp"
#include "tests/support/gloo_ranks.hpp"
#include "tests/support/learnable_rows.hpp"

using namespace strata;
using namespace strata::sparsity;

namespace {

constexpr int64_t kVocab = 50, kBatch = 4, kLen = 12;

models::ModelConfig tiny(const std::string& arch) {
  models::ModelConfig c;
  c.arch = arch;
  c.n_layer = 2, c.d_model = 32, c.n_head = 4, c.vocab_size = kVocab, c.max_seq_len = 16;
  if (arch == "llama") c.n_kv_head = 1, c.multiple_of = 16, c.bias = false, c.tie_embeddings = false;
  return c;
}

// Learnable rows x[i+1] = (7 x[i] + 3) mod V; inputs and next-token targets [steps, kBatch, kLen].
std::pair<at::Tensor, at::Tensor> batches(int64_t steps) { return testing::learnable_next_token(steps, kBatch, kLen, kVocab); }

struct Run {
  std::vector<double> loss, sparsity;
  std::map<std::string, at::Tensor> masks;  // full matrices, from tp rank 0 of dp rank 0
  bool masks_agree_over_dp = true;
  bool moments_zero_at_pruned = true;  // ZeRO-1: the gathered optimizer state at pruned entries
};

// `steps` steps of AdamW (weight decay, clipping at 0.5) through the trainer's hook order on a
// tp x dp mesh; each dp rank takes its rows of the global batch; zero1: optimizer state split over dp.
Run train(const models::ModelConfig& cfg, const SparsityConfig& sc, int64_t steps, int64_t tp, int64_t dp, bool zero1) {
  const auto [inputs, targets] = batches(steps);
  Run out{std::vector<double>(steps), std::vector<double>(steps), {}};
  std::vector<std::map<std::string, at::Tensor>> masks_by_dp(dp);
  testing::run_mesh(tp, dp, [&](int64_t r, int64_t d, std::shared_ptr<parallel::ProcessGroup> tpg,
                                std::shared_ptr<parallel::ProcessGroup> dpg) {
    auto m = models::make_model(cfg);
    m->init_weights(42);
    parallel::TensorParallelOptions o;
    o.vocab_multiple = 8;
    auto plan = parallel::parallelize(*m, tpg, o);
    std::vector<std::pair<std::string, at::Tensor>> named;
    std::vector<at::Tensor> params, pieces, owners;
    for (const auto& kv : m->named_parameters()) named.emplace_back(kv.key(), kv.value()), params.push_back(kv.value());
    optim::OptimConfig oc;
    oc.weight_decay = 0.1;
    auto groups = optim::make_param_groups(named, oc.weight_decay);
    std::unique_ptr<parallel::DataParallel> reducer;
    std::unique_ptr<optim::Optimizer> opt;
    if (zero1) {
      parallel::DataParallelOptions dpo;
      dpo.shard_grads = true;
      dpo.bucket_mb = 0.02;  // several buckets: pieces cut at bucket and rank boundaries, mid-matrix
      reducer = std::make_unique<parallel::DataParallel>(named, dpg, dpo);
      auto z = std::make_unique<optim::Zero1>(*reducer, groups, [&](std::vector<optim::ParamGroup> g) {
        return optim::make_optimizer(oc, std::move(g));
      });
      pieces = z->shard_params();
      for (size_t k = 0; k < pieces.size(); ++k) owners.push_back(named.at(z->piece_param(k)).second);
      opt = std::move(z);
    } else {
      if (dp != 1) fail("test: dp = {} needs zero1 here", dp);
      opt = optim::make_optimizer(oc, groups);
    }
    // As trainer/sparsity_hook.cpp: each weight as this tp rank's part; thresholds over tp.
    auto prunable = prunable_set(*m);
    for (auto& p : prunable)
      if (const auto* l = plan.layout_of(p.weight)) p.shard = layout_from_starts(l->dim, l->full, l->local, l->starts, r);
    Sparsifier sp(sc, std::move(prunable), steps, {}, tpg);
    if (auto* z = dynamic_cast<optim::Zero1*>(opt.get())) z->sync_pieces();  // static masks zeroed the weights
    const int64_t rows = kBatch / dp;
    for (int64_t s = 0; s < steps; ++s) {
      sp.on_step_begin(s, *opt);
      auto ids = inputs[s].narrow(0, d * rows, rows), tg = targets[s].narrow(0, d * rows, rows);
      if (reducer) reducer->set_sync(true);
      auto logits = m->forward(ids);
      auto loss = tp == 1 ? at::cross_entropy_loss(logits.reshape({-1, kVocab}), tg.reshape({-1}))
                          : parallel::vocab_parallel_cross_entropy_mean(logits, tg, plan.vocab, *tpg);
      loss.backward();
      if (reducer) reducer->finish();
      sp.after_backward(*opt);
      if (reducer) {
        plan.sync_grad_pieces(pieces, owners);
        plan.clip_grad_norm_pieces(pieces, owners, *dpg, 0.5);
      } else {
        plan.sync_grads();
        plan.clip_grad_norm(params, 0.5);
      }
      opt->step(3e-3);
      opt->zero_grad();
      sp.after_step(*opt);
      auto l = loss.detach().reshape({1}).clone();
      dpg->all_reduce(l, parallel::ReduceOp::Avg)->wait();
      if (r == 0 && d == 0) {
        out.loss[s] = l.item<double>();
        for (const auto& [k, v] : sp.metrics())
          if (k == "sparsity") out.sparsity[s] = v;
      }
    }
    std::map<std::string, at::Tensor> full;  // collective over tp
    for (const auto& [k, v] : sp.state())
      if (k.rfind("sparsity.mask.", 0) == 0) full[k.substr(14)] = v;
    auto state = opt->state();  // collective over dp under ZeRO-1 (this tp rank's shards, whole)
    if (r == 0) {
      masks_by_dp[d] = full;
      for (size_t i = 0; i < sp.prunable().size(); ++i) {
        const auto& name = sp.prunable()[i].name;
        for (const char* kind : {"adamw.m.", "adamw.v."}) {
          auto it = state.find(std::string(kind) + name);
          if (it == state.end() || !sp.masks()[i].defined()) continue;
          if (it->second.masked_select(sp.masks()[i].logical_not()).abs().max().item<double>() != 0.0)
            out.moments_zero_at_pruned = false;
        }
      }
    }
  });
  out.masks = masks_by_dp[0];
  for (int64_t d = 1; d < dp; ++d)
    for (const auto& [k, v] : out.masks)
      if (!masks_by_dp[d].count(k) || !at::equal(masks_by_dp[d].at(k), v)) out.masks_agree_over_dp = false;
  return out;
}

void require_same(const Run& got, const Run& ref, const std::string& what) {
  INFO(what);
  REQUIRE(got.masks_agree_over_dp);
  REQUIRE(got.moments_zero_at_pruned);
  for (size_t s = 0; s < ref.loss.size(); ++s) {
    INFO("step " << s << ": loss " << got.loss[s] << " vs " << ref.loss[s]);
    REQUIRE(std::abs(got.loss[s] - ref.loss[s]) <= 1e-5 * std::abs(ref.loss[s]));
    REQUIRE(got.sparsity[s] == ref.sparsity[s]);
  }
  REQUIRE(got.masks.size() == ref.masks.size());
  for (const auto& [name, mask] : ref.masks) {
    INFO("mask " << name);
    REQUIRE(got.masks.count(name));
    REQUIRE(got.masks.at(name).sizes().equals(mask.sizes()));
    REQUIRE(at::equal(got.masks.at(name), mask));
  }
}

}  // namespace

TEST_CASE("layout_from_starts: equal parts, shared parts counted once", "[sparsity][tp]") {
  auto a = layout_from_starts(1, 64, 32, {0, 32}, 1);
  REQUIRE((a.dim == 1 && a.index == 1 && a.count == 2 && a.counted));
  // One KV head of 8 rows over tp = 4 with two heads: ranks 0, 1 hold head 0 and ranks 2, 3 head 1.
  for (int64_t r = 0; r < 4; ++r) {
    auto l = layout_from_starts(0, 16, 8, {0, 0, 8, 8}, r);
    REQUIRE(l.index == r / 2);
    REQUIRE(l.count == 2);
    REQUIRE(l.counted == (r % 2 == 0));
  }
  REQUIRE_THROWS(layout_from_starts(0, 16, 8, {0, 4}, 1));  // not aligned to whole parts
}

TEST_CASE("ties: an all-equal matrix prunes the lowest full-matrix indices under any split", "[sparsity][tp]") {
  auto single = parallel::make_single_rank_group("one");
  const at::Tensor w = at::full({8, 6}, 0.25f);
  const int64_t z = zeros_for(0.4, w.numel());
  const at::Tensor expect = (at::arange(w.numel()) >= z).view({8, 6});  // kept: every index from z on
  REQUIRE(at::equal(magnitude_mask({"w", w, {}}, at::Tensor(), z, *single), expect));
  for (int64_t dim : {0, 1}) {
    std::vector<at::Tensor> got(2);
    testing::run_ranks(2, [&](int64_t r, std::shared_ptr<parallel::ProcessGroup> g) {
      ShardLayout l{dim, r, 2};
      got[r] = magnitude_mask({"w", local_slice(w, l).clone(), l}, at::Tensor(), z, *g);
    });
    REQUIRE(at::equal(at::cat(got, dim), expect));
  }
  // Two ranks holding the same part (one uncounted) with the other part on two more: tp = 1's mask.
  std::vector<at::Tensor> got(4);
  testing::run_ranks(4, [&](int64_t r, std::shared_ptr<parallel::ProcessGroup> g) {
    ShardLayout l = layout_from_starts(0, 8, 4, {0, 0, 4, 4}, r);
    got[r] = magnitude_mask({"w", local_slice(w, l).clone(), l}, at::Tensor(), z, *g);
  });
  REQUIRE(at::equal(got[0], got[1]));
  REQUIRE(at::equal(got[2], got[3]));
  REQUIRE(at::equal(at::cat({got[0], got[2]}, 0), expect));
}

TEST_CASE("Sparsifier::state gathers tp shards' masks into full matrices over Gloo (uint8 sum)", "[sparsity][tp]") {
  auto m = models::make_model(tiny("gpt"));
  m->init_weights(3);
  const auto whole = prunable_set(*m);
  SparsityConfig sc;
  sc.method = "static", sc.sparsity = 0.6, sc.seed = 9;
  Sparsifier ref(sc, whole, 10, {}, nullptr);
  std::vector<std::map<std::string, at::Tensor>> got(2);
  testing::run_gloo_ranks(2, [&](int r, parallel::ProcessGroup& g) {
    auto group = std::shared_ptr<parallel::ProcessGroup>(&g, [](parallel::ProcessGroup*) {});
    std::vector<Prunable> part;
    for (const auto& p : whole) {
      const bool row = p.name.find(".wo.") != std::string::npos || p.name.find(".w2.") != std::string::npos;
      ShardLayout l{row ? 1 : 0, r, 2};
      part.push_back({p.name, local_slice(p.weight.detach(), l).clone(), l});
    }
    Sparsifier sp(sc, part, 10, {}, group);
    got[r] = sp.state();
    // And back: loading the full masks gives this rank's slices.
    Sparsifier again(sc, part, 10, {}, group);
    again.load_state(got[r], "test");
    for (size_t i = 0; i < part.size(); ++i) REQUIRE(at::equal(again.masks()[i], sp.masks()[i]));
  });
  const auto want = ref.state();
  for (const auto& [k, v] : want) {
    INFO(k);
    REQUIRE(at::equal(got[0].at(k), v));
    REQUIRE(at::equal(got[1].at(k), v));
  }
}

TEST_CASE("static random masks: tp = 2 and ZeRO-1 (dp = 2, tp x dp = 2 x 2) equal tp = 1 over 20 steps",
          "[sparsity][tp][zero1]") {
  at::set_num_threads(1);
  SparsityConfig sc;
  sc.method = "static", sc.sparsity = 0.6, sc.seed = 5;
  for (const std::string arch : {"gpt", "llama"}) {  // llama: one KV head shared by both tp ranks
    auto ref = train(tiny(arch), sc, 20, 1, 1, false);
    REQUIRE(ref.loss.back() < ref.loss.front() - 0.1);
    REQUIRE(ref.sparsity.back() == Approx(0.6).margin(1e-3));
    require_same(train(tiny(arch), sc, 20, 2, 1, false), ref, arch + " tp = 2");
    require_same(train(tiny(arch), sc, 20, 1, 2, true), ref, arch + " dp = 2 zero1");
  }
  require_same(train(tiny("gpt"), sc, 20, 2, 2, true), train(tiny("gpt"), sc, 20, 1, 1, false), "gpt (tp, dp) = (2, 2) zero1");
}

TEST_CASE("gradual magnitude pruning: tp = 2 and ZeRO-1 equal tp = 1 over 20 steps (masks, sparsity, losses)",
          "[sparsity][tp][zero1]") {
  at::set_num_threads(1);
  SparsityConfig sc;
  sc.method = "gradual", sc.sparsity = 0.5, sc.prune_every = 2;
  for (const std::string arch : {"gpt", "llama"}) {
    auto ref = train(tiny(arch), sc, 20, 1, 1, false);
    REQUIRE(ref.sparsity.front() == 0.0);
    REQUIRE(ref.sparsity.back() == Approx(0.5).margin(1e-3));
    int64_t events = 0;
    for (size_t s = 1; s < ref.sparsity.size(); ++s) events += ref.sparsity[s] > ref.sparsity[s - 1];
    REQUIRE(events >= 3);  // several nested pruning events inside the window
    require_same(train(tiny(arch), sc, 20, 2, 1, false), ref, arch + " tp = 2");
    require_same(train(tiny(arch), sc, 20, 1, 2, true), ref, arch + " dp = 2 zero1");
  }
  require_same(train(tiny("gpt"), sc, 20, 2, 2, true), train(tiny("gpt"), sc, 20, 1, 1, false), "gpt (tp, dp) = (2, 2) zero1");
}
