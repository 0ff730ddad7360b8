#include "parallel/parallelize.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "models/blocks/embedding.hpp"
#include "models/blocks/linear.hpp"
#include "optim/grad_clip.hpp"
#include "parallel/tensor_parallel_ops.hpp"

namespace strata::parallel {
namespace {

const void* key(const at::Tensor& p) { return p.unsafeGetTensorImpl(); }

// Replaces a registered parameter's data by `shard` (same Variable, so the module keeps it).
void assign(at::Tensor& p, const at::Tensor& shard) { p.set_data(shard.contiguous().clone()); }

struct Sharder {
  TensorParallelPlan& plan;
  const TensorParallelOptions& opts;
  int64_t t, r;

  // Records that every rank q holds [start_of(q), start_of(q) + local) of dimension dim of p.
  template <class StartOf>
  void record(const at::Tensor& p, int64_t dim, int64_t full, int64_t local, StartOf start_of) {
    ShardLayout l{dim, full, local, {}};
    for (int64_t q = 0; q < t; ++q) l.starts.push_back(start_of(q));
    plan.layouts[key(p)] = std::move(l);
  }

  void column(const std::string& name, models::LinearImpl& lin) {
    const int64_t out = lin.weight.size(0), unit = lin.unit;
    if (unit <= 0 || out % unit != 0)
      fail("parallelize: column layer '{}' has {} output features, not a multiple of its unit {}", name, out, unit);
    const int64_t units = out / unit;
    int64_t start = 0, rows = 0, copies = 1;
    if (units % t == 0) {
      rows = out / t;
      start = r * rows;
    } else if (t % units == 0) {  // fewer units than ranks: replicate each on t/units consecutive ranks
      copies = t / units;
      rows = unit;
      start = (r / copies) * unit;
    } else {
      fail("parallelize: column layer '{}' has {} groups of {} output features (heads), which cannot be split "
           "across tp = {} (need a multiple of tp, or a divisor of it)", name, units, unit, t);
    }
    for (at::Tensor* p : {&lin.weight, &lin.bias}) {
      if (!p->defined()) continue;
      assign(*p, p->narrow(0, start, rows));
      record(*p, 0, out, rows, [&](int64_t q) { return copies > 1 ? (q / copies) * unit : q * rows; });
      plan.copies[key(*p)] = copies;
      if (copies > 1) plan.partial.push_back({*p, rows, start / unit, units});
    }
    plan.sharded.push_back(name);
    lin.comm = std::make_shared<ColumnParallelComm>(plan.ctx);
  }

  void row(const std::string& name, models::LinearImpl& lin) {
    const int64_t in = lin.weight.size(1), unit = lin.unit;
    if (unit <= 0 || in % unit != 0 || (in / unit) % t != 0)
      fail("parallelize: row layer '{}' has {} input features in groups of {}, which cannot be split across tp = {}",
           name, in, unit, t);
    assign(lin.weight, lin.weight.narrow(1, r * (in / t), in / t));
    record(lin.weight, 1, in, in / t, [&](int64_t q) { return q * (in / t); });
    plan.copies[key(lin.weight)] = 1;
    plan.sharded.push_back(name);
    lin.comm = std::make_shared<RowParallelComm>(plan.ctx);
  }

  VocabShard vocab(const std::string& name, int64_t v) {
    auto s = vocab_shard(v, t, r, opts.vocab_multiple);
    if (plan.has_vocab && plan.vocab.vocab != v)
      fail("parallelize: '{}' has a vocabulary of {} but another vocab layer has {}", name, v, plan.vocab.vocab);
    plan.has_vocab = true;
    plan.vocab = s;
    plan.sharded.push_back(name);
    return s;
  }

  void vocab_linear(const std::string& name, models::LinearImpl& lin) {
    auto s = vocab(name, lin.weight.size(0));
    for (at::Tensor* p : {&lin.weight, &lin.bias}) {
      if (!p->defined()) continue;
      assign(*p, vocab_rows(*p, s));
      record(*p, 0, s.vocab, s.local(), [&](int64_t q) { return q * s.local(); });
      plan.copies[key(*p)] = 1;
    }
    lin.comm = std::make_shared<ColumnParallelComm>(plan.ctx, /*enters_region=*/false);
  }

  void embedding(const std::string& name, models::EmbeddingImpl& emb) {
    auto s = vocab(name, emb.weight.size(0));
    assign(emb.weight, vocab_rows(emb.weight, s));
    record(emb.weight, 0, s.vocab, s.local(), [&](int64_t q) { return q * s.local(); });
    plan.copies[key(emb.weight)] = 1;
    // Tensors the model indexes by the same vocabulary (an output bias added to the tied logits):
    // split like the rows, padding zero, so `logits + bias` stays this rank's vocabulary range.
    for (auto& p : emb.vocab_aligned) {
      if (!p.defined() || p.dim() < 1 || p.size(0) != s.vocab)
        fail("parallelize: a tensor aligned with the vocabulary of embedding '{}' has shape {}, expected {} rows", name,
             p.defined() ? p.sizes() : at::IntArrayRef{}, s.vocab);
      assign(p, vocab_rows(p, s));
      record(p, 0, s.vocab, s.local(), [&](int64_t q) { return q * s.local(); });
      plan.copies[key(p)] = 1;
    }
    emb.comm = std::make_shared<VocabParallelEmbeddingComm>(plan.ctx, s);
  }
};

}  // namespace

TensorParallelPlan parallelize(torch::nn::Module& model, std::shared_ptr<ProcessGroup> tp,
                               const TensorParallelOptions& opts) {
  if (!tp) fail("parallelize: no tensor-parallel process group");
  TensorParallelPlan plan;
  plan.ctx = std::make_shared<TpContext>();
  plan.ctx->group = tp;
  const int64_t t = tp->size(), r = tp->rank();
  if (t == 1) return plan;  // nothing to split: plain layers, full logits
  plan.ctx->sequence_parallel = opts.sequence_parallel;
  // Megatron's offset: every tp rank gets its own dropout stream inside regions.
  plan.ctx->rng = std::make_shared<TpRng>(opts.dropout_seed + 2718 + static_cast<uint64_t>(r), opts.device);
  torch::NoGradGuard no_grad;
  Sharder sh{plan, opts, t, r};
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const std::string& name = item.key().empty() ? std::string("<root>") : item.key();
    if (auto lin = std::dynamic_pointer_cast<models::LinearImpl>(item.value())) {
      if (lin->comm) fail("parallelize: layer '{}' already has a communication hook (parallelized twice?)", name);
      switch (lin->role) {
        case models::LinearRole::Column: sh.column(name, *lin); break;
        case models::LinearRole::Row: sh.row(name, *lin); break;
        case models::LinearRole::Vocab: sh.vocab_linear(name, *lin); break;
        case models::LinearRole::Replicated: break;
      }
    } else if (auto emb = std::dynamic_pointer_cast<models::EmbeddingImpl>(item.value())) {
      if (emb->comm) fail("parallelize: embedding '{}' already has a communication hook", name);
      sh.embedding(name, *emb);
    }
  }
  for (const auto& p : model.parameters())
    if (!plan.copies.count(key(p))) plan.replicated.push_back(p);
  return plan;
}

const ShardLayout* TensorParallelPlan::layout_of(const at::Tensor& p) const {
  auto it = layouts.find(key(p));
  return it == layouts.end() ? nullptr : &it->second;
}

at::Tensor TensorParallelPlan::full_from_local(const at::Tensor& local, const ShardLayout& l) const {
  if (local.dim() <= l.dim || local.size(l.dim) != l.local)
    fail("tensor parallelism: a tensor of shape {} is not a {}-element shard of dimension {} (rank {} of {})",
         local.sizes(), l.local, l.dim, ctx->group->rank(), ctx->group->size());
  torch::NoGradGuard no_grad;
  auto all = all_gather_along(local.detach(), l.dim, *ctx->group);  // rank q's part at q * local
  auto shape = local.sizes().vec();
  shape[l.dim] = l.full;
  auto full = at::zeros(shape, local.options());
  for (size_t q = 0; q < l.starts.size(); ++q) {
    const int64_t n = std::min(l.local, l.full - l.starts[q]);
    if (n > 0) full.narrow(l.dim, l.starts[q], n).copy_(all.narrow(l.dim, q * l.local, n));
  }
  return full;
}

at::Tensor TensorParallelPlan::local_from_full(const at::Tensor& full, const ShardLayout& l) const {
  const int64_t r = ctx->group->rank();
  if (full.dim() <= l.dim || full.size(l.dim) != l.full)
    fail("tensor parallelism: a tensor of shape {} does not have the full size {} in dimension {} (rank {} of {})",
         full.sizes(), l.full, l.dim, r, ctx->group->size());
  auto shape = full.sizes().vec();
  shape[l.dim] = l.local;
  auto out = at::zeros(shape, full.options());
  const int64_t n = std::min(l.local, l.full - l.starts[r]);
  if (n > 0) out.narrow(l.dim, 0, n).copy_(full.narrow(l.dim, l.starts[r], n));
  return out;
}

void TensorParallelPlan::sync_grads() const {
  torch::NoGradGuard no_grad;
  for (const auto& pr : partial) {
    auto g = pr.param.grad();
    if (!g.defined()) continue;
    auto shape = g.sizes().vec();
    shape[0] = pr.unit_rows * pr.units;
    auto full = at::zeros(shape, g.options());
    full.narrow(0, pr.unit_index * pr.unit_rows, pr.unit_rows).copy_(g);
    ctx->group->all_reduce(full, ReduceOp::Sum)->wait();
    g.copy_(full.narrow(0, pr.unit_index * pr.unit_rows, pr.unit_rows));
  }
  if (!ctx->sequence_parallel) return;
  for (const auto& p : replicated) {
    auto g = p.grad();
    if (g.defined()) ctx->group->all_reduce(g, ReduceOp::Sum)->wait();
  }
}

double TensorParallelPlan::weight_of(const at::Tensor& p) const {
  auto it = copies.find(key(p));
  return 1.0 / static_cast<double>(it == copies.end() ? ctx->group->size() : it->second);
}

double TensorParallelPlan::weighted_norm(const std::vector<at::Tensor>& grads, const std::vector<double>& weights,
                                         ProcessGroup* also) const {
  torch::NoGradGuard no_grad;
  const int64_t t = ctx->group->size();
  if (grads.empty() && t == 1 && !also) return 0.0;
  at::Tensor sq = at::zeros({1}, at::TensorOptions().dtype(at::kDouble).device(
                                     grads.empty() ? at::Device(at::kCPU) : grads.front().device()));
  if (!grads.empty()) {
    auto norms = at::stack(at::_foreach_norm(grads, 2)).to(at::kDouble);
    auto w = at::tensor(weights, at::TensorOptions().dtype(at::kDouble)).to(norms.device());
    sq += (norms.pow(2) * w).sum();
  }
  if (t > 1) ctx->group->all_reduce(sq, ReduceOp::Sum)->wait();
  if (also && also->size() > 1) also->all_reduce(sq, ReduceOp::Sum)->wait();
  return std::sqrt(sq.item<double>());
}

double TensorParallelPlan::grad_norm(const std::vector<at::Tensor>& params, ProcessGroup* also) const {
  std::vector<at::Tensor> grads;
  std::vector<double> weights;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    weights.push_back(weight_of(p));
  }
  return weighted_norm(grads, weights, also);
}

double TensorParallelPlan::grad_norm(const std::vector<at::Tensor>& params, ProcessGroup& also) const {
  return grad_norm(params, &also);
}

double TensorParallelPlan::clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) const {
  return optim::scale_grads_to_max_norm(params, grad_norm(params), max_norm);
}

namespace {
void check_pieces(const std::vector<at::Tensor>& pieces, const std::vector<at::Tensor>& owners, const ProcessGroup& g) {
  if (pieces.size() != owners.size())
    fail("tensor parallelism: {} ZeRO-1 pieces but {} owning parameters (tp rank {})", pieces.size(), owners.size(),
         g.rank());
}
}  // namespace

void TensorParallelPlan::sync_grad_pieces(const std::vector<at::Tensor>& pieces,
                                          const std::vector<at::Tensor>& owners) const {
  check_pieces(pieces, owners, *ctx->group);
  torch::NoGradGuard no_grad;
  std::unordered_map<const void*, const PartialReplica*> partial_of;
  for (const auto& pr : partial) partial_of[key(pr.param)] = &pr;
  for (size_t k = 0; k < pieces.size(); ++k) {
    auto g = pieces[k].grad();
    if (!g.defined()) continue;  // the same on every tp rank: the pieces and the graph agree
    if (auto it = partial_of.find(key(owners[k])); it != partial_of.end()) {
      // This piece is the same element range of the unit on every rank sharing it: sum over those.
      const auto& pr = *it->second;
      auto full = at::zeros({pr.units, g.numel()}, g.options());
      full[pr.unit_index].copy_(g.reshape({-1}));
      ctx->group->all_reduce(full, ReduceOp::Sum)->wait();
      g.copy_(full[pr.unit_index].view(g.sizes()));
    } else if (ctx->sequence_parallel && !copies.count(key(owners[k]))) {
      auto sum = g.clone();  // the piece's grad is a view into the reducer's shard
      ctx->group->all_reduce(sum, ReduceOp::Sum)->wait();
      g.copy_(sum);
    }
  }
}

double TensorParallelPlan::grad_norm_pieces(const std::vector<at::Tensor>& pieces, const std::vector<at::Tensor>& owners,
                                            ProcessGroup& dp) const {
  check_pieces(pieces, owners, *ctx->group);
  std::vector<at::Tensor> grads;
  std::vector<double> weights;
  for (size_t k = 0; k < pieces.size(); ++k) {
    if (!pieces[k].grad().defined()) continue;
    grads.push_back(pieces[k].grad());
    weights.push_back(weight_of(owners[k]));
  }
  return weighted_norm(grads, weights, &dp);
}

double TensorParallelPlan::clip_grad_norm_pieces(const std::vector<at::Tensor>& pieces,
                                                 const std::vector<at::Tensor>& owners, ProcessGroup& dp,
                                                 double max_norm) const {
  return optim::scale_grads_to_max_norm(pieces, grad_norm_pieces(pieces, owners, dp), max_norm);
}

}  // namespace strata::parallel
