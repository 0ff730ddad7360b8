#include "parallel/tensor_parallel_ops.hpp"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"

namespace strata::parallel {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The group travels through the autograd context as an address; the layers that call the ops own
// the group and outlive every graph built through them.
void keep_group(AutogradContext* ctx, ProcessGroup& g) { ctx->saved_data["group"] = reinterpret_cast<int64_t>(&g); }
ProcessGroup& group_of(AutogradContext* ctx) {
  return *reinterpret_cast<ProcessGroup*>(ctx->saved_data["group"].toInt());
}

at::Tensor all_reduce_copy(const at::Tensor& x, ProcessGroup& g) {
  auto y = x.contiguous().clone();
  g.all_reduce(y, ReduceOp::Sum)->wait();
  return y;
}

at::Tensor split_local(const at::Tensor& x, int64_t dim, ProcessGroup& g) {
  const int64_t t = g.size();
  if (x.size(dim) % t != 0)
    fail("{}: cannot split dimension {} of size {} across {} tensor-parallel ranks (rank {})", g.name(), dim,
         x.size(dim), t, g.rank());
  return x.chunk(t, dim)[g.rank()].contiguous();
}

// Each op's backward applies its adjoint op. Under create_graph (GradMode on inside backward: a
// double backward, e.g. Sophia-H's Hessian-vector product) the adjoint runs as the autograd Function
// below, so the backward pass is itself differentiable with the same Megatron conventions; otherwise
// the plain collective runs. Pairs: copy <-> reduce, gather <-> reduce-scatter, split <-> gather of a
// replicated value (all-gather forward, keep-the-chunk backward: the gradient arriving there is the
// whole gradient on every rank, as for split's input).
struct CopyToRegion : torch::autograd::Function<CopyToRegion> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, ProcessGroup* g) {
    keep_group(ctx, *g);
    return x.view_as(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad);
};

struct ReduceFromRegion : torch::autograd::Function<ReduceFromRegion> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, ProcessGroup* g) {
    keep_group(ctx, *g);
    return all_reduce_copy(x, *g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad);
};

struct GatherFromSeq : torch::autograd::Function<GatherFromSeq> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim, ProcessGroup* g) {
    keep_group(ctx, *g);
    ctx->saved_data["dim"] = dim;
    return all_gather_along(x, dim, *g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad);
};

struct ReduceScatterToSeq : torch::autograd::Function<ReduceScatterToSeq> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim, ProcessGroup* g) {
    keep_group(ctx, *g);
    ctx->saved_data["dim"] = dim;
    return reduce_scatter_along(x, dim, *g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad);
};

struct SplitToSeq : torch::autograd::Function<SplitToSeq> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim, ProcessGroup* g) {
    keep_group(ctx, *g);
    ctx->saved_data["dim"] = dim;
    return split_local(x, dim, *g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad);
};

// The adjoint of SplitToSeq (only reached by double backward): all-gather forward, chunk backward.
struct GatherReplicated : torch::autograd::Function<GatherReplicated> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim, ProcessGroup* g) {
    keep_group(ctx, *g);
    ctx->saved_data["dim"] = dim;
    return all_gather_along(x, dim, *g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad);
};

int64_t dim_of(AutogradContext* ctx) { return ctx->saved_data["dim"].toInt(); }
bool differentiable_backward() { return at::GradMode::is_enabled(); }

variable_list CopyToRegion::backward(AutogradContext* ctx, variable_list grad) {
  auto& g = group_of(ctx);
  return {differentiable_backward() ? ReduceFromRegion::apply(grad[0], &g) : all_reduce_copy(grad[0], g), at::Tensor()};
}
variable_list ReduceFromRegion::backward(AutogradContext* ctx, variable_list grad) {
  auto& g = group_of(ctx);
  return {differentiable_backward() ? CopyToRegion::apply(grad[0], &g) : grad[0], at::Tensor()};
}
variable_list GatherFromSeq::backward(AutogradContext* ctx, variable_list grad) {
  auto& g = group_of(ctx);
  const int64_t d = dim_of(ctx);
  return {differentiable_backward() ? ReduceScatterToSeq::apply(grad[0], d, &g) : reduce_scatter_along(grad[0], d, g),
          at::Tensor(), at::Tensor()};
}
variable_list ReduceScatterToSeq::backward(AutogradContext* ctx, variable_list grad) {
  auto& g = group_of(ctx);
  const int64_t d = dim_of(ctx);
  return {differentiable_backward() ? GatherFromSeq::apply(grad[0], d, &g) : all_gather_along(grad[0], d, g),
          at::Tensor(), at::Tensor()};
}
variable_list SplitToSeq::backward(AutogradContext* ctx, variable_list grad) {
  auto& g = group_of(ctx);
  const int64_t d = dim_of(ctx);
  return {differentiable_backward() ? GatherReplicated::apply(grad[0], d, &g) : all_gather_along(grad[0], d, g),
          at::Tensor(), at::Tensor()};
}
variable_list GatherReplicated::backward(AutogradContext* ctx, variable_list grad) {
  auto& g = group_of(ctx);
  const int64_t d = dim_of(ctx);
  return {differentiable_backward() ? SplitToSeq::apply(grad[0], d, &g) : split_local(grad[0], d, g), at::Tensor(),
          at::Tensor()};
}

int64_t norm_dim(const at::Tensor& x, int64_t dim) { return dim < 0 ? dim + x.dim() : dim; }

}  // namespace

at::Tensor all_gather_along(const at::Tensor& x, int64_t dim, ProcessGroup& g) {
  dim = norm_dim(x, dim);
  if (g.size() == 1) return x;
  auto in = x.movedim(dim, 0).contiguous();
  auto shape = in.sizes().vec();
  shape[0] *= g.size();
  auto out = at::empty(shape, in.options());
  g.all_gather_flat(out, in)->wait();
  return out.movedim(0, dim).contiguous();
}

at::Tensor reduce_scatter_along(const at::Tensor& x, int64_t dim, ProcessGroup& g) {
  dim = norm_dim(x, dim);
  if (g.size() == 1) return x;
  if (x.size(dim) % g.size() != 0)
    fail("{}: reduce-scatter of dimension {} (size {}) over {} ranks needs a multiple of the group size (rank {})",
         g.name(), dim, x.size(dim), g.size(), g.rank());
  auto in = x.movedim(dim, 0).contiguous();
  auto shape = in.sizes().vec();
  shape[0] /= g.size();
  auto out = at::empty(shape, in.options());
  g.reduce_scatter_flat(out, in, ReduceOp::Sum)->wait();
  return out.movedim(0, dim).contiguous();
}

at::Tensor copy_to_tp_region(const at::Tensor& x, ProcessGroup& g) {
  return g.size() == 1 ? x : CopyToRegion::apply(x, &g);
}
at::Tensor reduce_from_tp_region(const at::Tensor& x, ProcessGroup& g) {
  return g.size() == 1 ? x : ReduceFromRegion::apply(x, &g);
}
at::Tensor gather_from_sp_region(const at::Tensor& x, int64_t dim, ProcessGroup& g) {
  return g.size() == 1 ? x : GatherFromSeq::apply(x, norm_dim(x, dim), &g);
}
at::Tensor reduce_scatter_to_sp_region(const at::Tensor& x, int64_t dim, ProcessGroup& g) {
  return g.size() == 1 ? x : ReduceScatterToSeq::apply(x, norm_dim(x, dim), &g);
}
at::Tensor split_to_sp_region(const at::Tensor& x, int64_t dim, ProcessGroup& g) {
  return g.size() == 1 ? x : SplitToSeq::apply(x, norm_dim(x, dim), &g);
}

}  // namespace strata::parallel
