// Masks under parallelism: the distributed k-th value over tp = 2 shards equals tp = 1 (rows and
// columns split, with ties), and data-parallel replicas that average gradients get identical masks.
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <catch2/catch.hpp>

#include "models/language_model.hpp"
#include "optim/optimizer.hpp"
#include "sparsity/masks.hpp"
#include "sparsity/select.hpp"
#include "sparsity/sparsifier.hpp"
#include "tests/parallel/fake_group.hpp"

using namespace strata;
using namespace strata::sparsity;

namespace {

at::Tensor matrix_with_ties(int64_t rows, int64_t cols, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor w = at::randn({rows, cols}, gen);
  w.view(-1).slice(0, 5, rows * cols, 7).fill_(0.3f);  // many equal magnitudes spread over both shards
  w.view(-1).slice(0, 9, rows * cols, 14).fill_(-0.3f);
  return w;
}

}  // namespace

TEST_CASE("select_smallest over tp = 2 and 4 shards equals one rank (rows and columns, ties)", "[sparsity][tp]") {
  auto single = parallel::make_single_rank_group("one");
  const at::Tensor w = matrix_with_ties(12, 20, 5);
  for (int64_t dim : {0, 1}) {
    for (int64_t t : {2, 4}) {
      for (double s : {0.2, 0.5, 0.77}) {
        const int64_t z = zeros_for(s, w.numel());
        // tp = 1 reference, then a second nested event on top of it.
        Prunable whole{"w", w.clone(), {}};
        at::Tensor ref1 = magnitude_mask(whole, at::Tensor(), z, *single);
        at::Tensor ref2 = magnitude_mask(whole, ref1, zeros_for(std::min(0.9, s + 0.1), w.numel()), *single);
        std::vector<at::Tensor> got1(t), got2(t);
        testing::run_ranks(t, [&](int64_t r, std::shared_ptr<parallel::ProcessGroup> g) {
          ShardLayout layout{dim, r, t};
          Prunable part{"w", local_slice(w, layout).clone(), layout};
          got1[r] = magnitude_mask(part, at::Tensor(), z, *g);
          got2[r] = magnitude_mask(part, got1[r], zeros_for(std::min(0.9, s + 0.1), w.numel()), *g);
        });
        INFO("dim " << dim << " t " << t << " s " << s);
        REQUIRE(at::equal(at::cat(got1, dim), ref1));
        REQUIRE(at::equal(at::cat(got2, dim), ref2));
      }
    }
  }
}

TEST_CASE("static masks of tp shards are the shards of the tp = 1 mask", "[sparsity][tp]") {
  const at::Tensor w = at::randn({16, 8});
  Prunable whole{"blocks.0.mlp.w1.weight", w, {}};
  at::Tensor ref = random_mask(whole, 0.6, 3);
  for (int64_t dim : {0, 1}) {
    std::vector<at::Tensor> parts;
    for (int64_t r = 0; r < 2; ++r) {
      ShardLayout l{dim, r, 2};
      parts.push_back(random_mask({whole.name, local_slice(w, l), l}, 0.6, 3));
    }
    REQUIRE(at::equal(at::cat(parts, dim), ref));
  }
}

TEST_CASE("global_flat_index of a shard addresses the full matrix", "[sparsity][tp]") {
  at::Tensor full = at::arange(6 * 10, at::kLong).view({6, 10});
  for (int64_t dim : {0, 1})
    for (int64_t r = 0; r < 2; ++r) {
      ShardLayout l{dim, r, 2};
      REQUIRE(at::equal(global_flat_index(local_slice(full, l), l), local_slice(full, l)));
    }
}

TEST_CASE("dp = 2: replicas that average gradients prune to identical masks and weights", "[sparsity][dp]") {
  at::set_num_threads(1);
  models::ModelConfig mc;
  mc.n_layer = 2, mc.d_model = 32, mc.n_head = 4, mc.vocab_size = 64, mc.max_seq_len = 16;
  const int64_t steps = 30;
  std::vector<std::vector<at::Tensor>> masks(2);
  std::vector<std::vector<at::Tensor>> weights(2);
  testing::run_ranks(2, [&](int64_t rank, std::shared_ptr<parallel::ProcessGroup> dp) {
    at::manual_seed(1);
    auto m = models::make_model(mc);
    m->init_weights(1);
    std::vector<std::pair<std::string, at::Tensor>> named;
    for (auto& kv : m->named_parameters()) named.emplace_back(kv.key(), kv.value());
    optim::OptimConfig oc;
    auto opt = optim::make_optimizer(oc, optim::make_param_groups(named, 0.1));
    SparsityConfig c;
    c.method = "gradual", c.sparsity = 0.5, c.prune_every = 2;
    Sparsifier sp(c, prunable_set(*m), steps, {}, nullptr);  // whole matrices: shard group of one
    auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + rank);  // each rank's own data
    for (int64_t s = 0; s < steps; ++s) {
      sp.on_step_begin(s, *opt);
      auto x = at::randint(0, 64, {2, 16}, gen);
      auto logits = m->forward(x);
      at::cross_entropy_loss(logits.view({-1, 64}), at::roll(x, -1, 1).view({-1})).backward();
      for (auto& [_, p] : named) dp->all_reduce(p.mutable_grad(), parallel::ReduceOp::Avg)->wait();
      sp.after_backward(*opt);
      opt->step(3e-3);
      opt->zero_grad();
      sp.after_step(*opt);
    }
    masks[rank] = sp.masks();
    for (auto& [_, p] : named) weights[rank].push_back(p.detach().clone());
  });
  REQUIRE(masks[0].size() == 12);
  for (size_t i = 0; i < masks[0].size(); ++i) {
    REQUIRE(masks[0][i].defined());
    REQUIRE(at::equal(masks[0][i], masks[1][i]));
    REQUIRE((~masks[0][i]).sum().item<int64_t>() == zeros_for(0.5, masks[0][i].numel()));
  }
  for (size_t i = 0; i < weights[0].size(); ++i) REQUIRE(at::equal(weights[0][i], weights[1][i]));
}
