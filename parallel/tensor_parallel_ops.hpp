// The autograd operations of Megatron-style tensor parallelism over one ProcessGroup (the tp group).
// They know nothing of transformers: they move activations in and out of tensor-parallel regions.
//
//   copy_to_tp_region      f: identity forward,  all-reduce (sum) backward   -- region entry
//   reduce_from_tp_region  g: all-reduce forward, identity backward          -- region exit
//   gather_from_sp_region    all-gather along `dim` forward, reduce-scatter backward
//   reduce_scatter_to_sp_region  reduce-scatter along `dim` forward, all-gather backward
//   split_to_sp_region       keep this rank's chunk along `dim` forward, all-gather backward
//
// The sequence-parallel pair replaces f/g when the activations outside a region are split along
// the sequence: the column layer gathers the sequence on entry, the row layer reduce-scatters on
// exit (the same bytes as one all-reduce). Every op is the identity on a group of one rank.
// Every op is twice differentiable: under create_graph its backward applies the adjoint op as an
// autograd op (copy <-> reduce, gather <-> reduce-scatter), so double backward (Sophia-H's
// Hessian-vector products) passes through tensor-parallel regions.
// The group must outlive the autograd graph (the layers that call these ops own it).
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

#include "parallel/process_group.hpp"

namespace strata::parallel {

at::Tensor copy_to_tp_region(const at::Tensor& x, ProcessGroup& group);
at::Tensor reduce_from_tp_region(const at::Tensor& x, ProcessGroup& group);
at::Tensor gather_from_sp_region(const at::Tensor& x, int64_t dim, ProcessGroup& group);
at::Tensor reduce_scatter_to_sp_region(const at::Tensor& x, int64_t dim, ProcessGroup& group);
at::Tensor split_to_sp_region(const at::Tensor& x, int64_t dim, ProcessGroup& group);

// Plain (non-autograd) helpers the ops are built from; `dim` may be any dimension.
at::Tensor all_gather_along(const at::Tensor& x, int64_t dim, ProcessGroup& group);
at::Tensor reduce_scatter_along(const at::Tensor& x, int64_t dim, ProcessGroup& group);

}  // namespace strata::parallel
