#include "parallel/vocab_parallel.hpp"

#include <limits>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "parallel/tensor_parallel_ops.hpp"

namespace strata::parallel {

int64_t padded_vocab_size(int64_t vocab, int64_t tp, int64_t multiple) {
  if (vocab <= 0 || tp <= 0 || multiple <= 0)
    fail("vocab padding: vocab {}, tp {} and multiple {} must all be positive", vocab, tp, multiple);
  const int64_t unit = multiple * tp;
  return (vocab + unit - 1) / unit * unit;
}

VocabShard vocab_shard(int64_t vocab, int64_t tp, int64_t rank, int64_t multiple) {
  if (rank < 0 || rank >= tp) fail("vocab shard: rank {} is outside a tp group of {}", rank, tp);
  VocabShard s;
  s.vocab = vocab;
  s.padded = padded_vocab_size(vocab, tp, multiple);
  s.start = rank * (s.padded / tp);
  s.end = s.start + s.padded / tp;
  return s;
}

at::Tensor vocab_rows(const at::Tensor& full, const VocabShard& s) {
  if (full.size(0) != s.vocab) fail("vocab_rows: tensor has {} rows, expected the vocabulary size {}", full.size(0), s.vocab);
  auto shape = full.sizes().vec();
  shape[0] = s.local();
  auto out = at::zeros(shape, full.options());
  const int64_t real_end = std::min(s.end, s.vocab);
  if (real_end > s.start) out.narrow(0, 0, real_end - s.start).copy_(full.narrow(0, s.start, real_end - s.start));
  return out;
}

at::Tensor vocab_parallel_embedding(const at::Tensor& table, const at::Tensor& ids, const VocabShard& s,
                                    ProcessGroup& group, int64_t reduce_scatter_dim) {
  if (table.size(0) != s.local())
    fail("{}: vocab-parallel embedding shard has {} rows but rank {} owns {} ids [{}, {})", group.name(),
         table.size(0), group.rank(), s.local(), s.start, s.end);
  auto outside = (ids < s.start).logical_or(ids >= s.end);
  auto local = (ids - s.start).masked_fill(outside, 0);
  auto y = at::embedding(table, local).masked_fill(outside.unsqueeze(-1), 0.0);
  return reduce_scatter_dim >= 0 ? reduce_scatter_to_sp_region(y, reduce_scatter_dim, group)
                                 : reduce_from_tp_region(y, group);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct VocabParallelCE : torch::autograd::Function<VocabParallelCE> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& targets,
                            const VocabShard* s, ProcessGroup* g, int64_t ignore_index) {
    if (logits.dim() != 2 || targets.dim() != 1 || logits.size(0) != targets.size(0))
      fail("vocab-parallel cross-entropy: logits {} and targets {} must be [N, V'/t] and [N]", logits.sizes(),
           targets.sizes());
    if (logits.size(1) != s->local())
      fail("{}: local logits have {} columns but rank {} owns {} vocabulary ids", g->name(), logits.size(1), g->rank(),
           s->local());
    auto lf = logits.to(at::kFloat);
    auto col = at::arange(s->start, s->end, targets.options());
    lf = lf.masked_fill((col >= s->vocab).unsqueeze(0), -std::numeric_limits<float>::infinity());
    auto m = std::get<0>(lf.max(1)).contiguous();
    g->all_reduce(m, ReduceOp::Max)->wait();
    auto z = lf - m.unsqueeze(1);
    auto e = z.exp();
    auto sum = e.sum(1).contiguous();
    g->all_reduce(sum, ReduceOp::Sum)->wait();
    auto valid = targets != ignore_index;
    auto mine = (targets >= s->start).logical_and(targets < s->end).logical_and(valid);
    auto local_t = (targets - s->start).masked_fill(mine.logical_not(), 0);
    auto zt = z.gather(1, local_t.unsqueeze(1)).squeeze(1).masked_fill(mine.logical_not(), 0.0).contiguous();
    g->all_reduce(zt, ReduceOp::Sum)->wait();
    auto loss = (sum.log() - zt).masked_fill(valid.logical_not(), 0.0);
    ctx->save_for_backward({e.div_(sum.unsqueeze(1)), local_t, mine, valid});
    ctx->saved_data["dtype"] = static_cast<int64_t>(logits.scalar_type());
    return loss;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    auto softmax = saved[0], local_t = saved[1], mine = saved[2], valid = saved[3];
    auto gl = softmax.clone();
    gl.scatter_add_(1, local_t.unsqueeze(1), -mine.to(gl.scalar_type()).unsqueeze(1));
    gl.mul_((grad[0].to(gl.scalar_type()) * valid.to(gl.scalar_type())).unsqueeze(1));
    auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {gl.to(dtype), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor vocab_parallel_cross_entropy(const at::Tensor& logits, const at::Tensor& targets, const VocabShard& s,
                                        ProcessGroup& group, int64_t ignore_index) {
  return VocabParallelCE::apply(logits, targets, &s, &group, ignore_index);
}

at::Tensor vocab_parallel_cross_entropy_twice_differentiable(const at::Tensor& logits, const at::Tensor& targets,
                                                             const VocabShard& s, ProcessGroup& g,
                                                             int64_t ignore_index) {
  if (logits.dim() != 2 || targets.dim() != 1 || logits.size(0) != targets.size(0))
    fail("vocab-parallel cross-entropy: logits {} and targets {} must be [N, V'/t] and [N]", logits.sizes(),
         targets.sizes());
  if (logits.size(1) != s.local())
    fail("{}: local logits have {} columns but rank {} owns {} vocabulary ids", g.name(), logits.size(1), g.rank(),
         s.local());
  auto col = at::arange(s.start, s.end, targets.options());
  auto lf = logits.to(at::kFloat).masked_fill((col >= s.vocab).unsqueeze(0), -std::numeric_limits<float>::infinity());
  at::Tensor m;
  {
    at::NoGradGuard no_grad;  // a shift only: log-sum-exp does not depend on it
    m = std::get<0>(lf.detach().max(1)).contiguous();
    if (g.size() > 1) g.all_reduce(m, ReduceOp::Max)->wait();
  }
  auto z = lf - m.unsqueeze(1);
  auto sum = reduce_from_tp_region(z.exp().sum(1), g);
  auto valid = targets != ignore_index;
  auto mine = (targets >= s.start).logical_and(targets < s.end).logical_and(valid);
  auto local_t = (targets - s.start).masked_fill(mine.logical_not(), 0);
  auto zt = reduce_from_tp_region(z.gather(1, local_t.unsqueeze(1)).squeeze(1).masked_fill(mine.logical_not(), 0.0), g);
  return (sum.log() - zt).masked_fill(valid.logical_not(), 0.0);
}

at::Tensor vocab_parallel_cross_entropy_mean(const at::Tensor& logits, const at::Tensor& targets, const VocabShard& s,
                                             ProcessGroup& group, int64_t ignore_index, bool twice_differentiable) {
  auto flat = logits.reshape({-1, logits.size(-1)});
  auto t = targets.reshape({-1});
  auto per_token = twice_differentiable
                       ? vocab_parallel_cross_entropy_twice_differentiable(flat, t, s, group, ignore_index)
                       : vocab_parallel_cross_entropy(flat, t, s, group, ignore_index);
  auto count = (t != ignore_index).sum().to(per_token.scalar_type());
  return per_token.sum() / count;
}

}  // namespace strata::parallel
