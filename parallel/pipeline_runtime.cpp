#include "parallel/pipeline_runtime.hpp"

#include <chrono>
#include <map>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"

namespace strata::parallel {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Tags of pipeline messages stay below this; the two helper exchanges use tags above it.
constexpr int64_t kEndsTagBase = 1 << 28;
}  // namespace

PipeRuntime::PipeRuntime(PipeSchedule schedule, std::shared_ptr<ProcessGroup> group, std::vector<int64_t> act_shape,
                         at::TensorOptions options)
    : sched_(std::move(schedule)), group_(std::move(group)), act_shape_(std::move(act_shape)), options_(options) {
  if (!group_) fail("pipeline runtime: no process group");
  if (group_->size() != sched_.p)
    fail("pipeline runtime: group '{}' has {} ranks but the schedule has p = {}", group_->name(), group_->size(), sched_.p);
  rank_ = group_->rank();
  if (auto err = check_schedule(sched_); !err.empty()) fail("pipeline runtime: invalid {} schedule: {}", to_string(sched_.kind), err);
}

PipeStepResult PipeRuntime::run_step(PipeStage& stage) {
  const auto t0 = Clock::now();
  PipeStepResult res;
  const int64_t last_chunk = sched_.num_chunks() - 1;
  res.losses.resize(rank_ == sched_.rank_of_chunk(last_chunk) ? sched_.m : 0);
  using Key = std::pair<int64_t, int64_t>;  // (mb, chunk)
  std::map<Key, at::Tensor> inputs, outputs, recv_act, recv_grad;
  std::vector<at::Tensor> pending_sends;  // kept alive until their batch completes
  std::vector<std::shared_ptr<Work>> works;
  auto flush = [&] {
    for (auto& w : works) w->wait();
    works.clear();
    pending_sends.clear();
  };
  const auto& ops = sched_.ranks.at(rank_);
  for (size_t i = 0; i < ops.size(); ++i) {
    const PipeOp& op = ops[i];
    const Key key{op.mb, op.chunk};
    const int64_t tag = op.is_compute() ? -1 : message_tag(sched_, op);
    switch (op.kind) {
      case PipeOpKind::RecvAct:
      case PipeOpKind::RecvGrad: {
        auto buf = at::empty(act_shape_, options_);
        works.push_back(group_->recv(buf, op.peer, tag));
        (op.kind == PipeOpKind::RecvAct ? recv_act : recv_grad)[key] = buf;
        break;
      }
      case PipeOpKind::SendAct:
      case PipeOpKind::SendGrad: {
        auto it = op.kind == PipeOpKind::SendAct ? outputs.find(key) : inputs.find(key);
        at::Tensor t = op.kind == PipeOpKind::SendAct ? it->second.detach().contiguous() : it->second.grad().contiguous();
        if (!t.defined()) fail("pipeline rank {}: {} has no tensor to send (input gradient missing)", rank_, to_string(op));
        if (!t.sizes().equals(act_shape_))
          fail("pipeline rank {}: {} sends shape {} but the pipeline expects {}", rank_, to_string(op), t.sizes(), act_shape_);
        pending_sends.push_back(t);
        works.push_back(group_->send(t, op.peer, tag));
        if (op.kind == PipeOpKind::SendGrad) inputs.erase(it);
        break;
      }
      case PipeOpKind::Forward: {
        flush();
        const auto tc = Clock::now();
        at::Tensor in;
        if (op.chunk > 0) {
          auto it = recv_act.find(key);
          in = it->second.requires_grad_(true);
          recv_act.erase(it);
          inputs[key] = in;
        }
        at::Tensor out = stage.forward(op.chunk, op.mb, in);
        if (op.chunk == last_chunk) {
          if (out.numel() != 1) fail("pipeline rank {}: the last chunk must return a scalar loss, got shape {}", rank_, out.sizes());
          res.losses[op.mb] = out.detach();
        }
        outputs[key] = out;
        res.compute_seconds += seconds_since(tc);
        break;
      }
      case PipeOpKind::Backward: {
        flush();
        const auto tc = Clock::now();
        auto out_it = outputs.find(key);
        if (op.chunk == last_chunk) {
          torch::autograd::backward({out_it->second});
        } else {
          auto g = recv_grad.find(key);
          torch::autograd::backward({out_it->second}, {g->second});
          recv_grad.erase(g);
        }
        outputs.erase(out_it);
        if (op.chunk == 0) inputs.erase(key);  // chunk 0 has no input to send a gradient for
        res.compute_seconds += seconds_since(tc);
        break;
      }
    }
    // A batch ends where the next op is a compute op (or the list ends).
    if (!op.is_compute() && (i + 1 == ops.size() || ops[i + 1].is_compute())) flush();
  }
  flush();
  if (!outputs.empty() || !recv_act.empty() || !recv_grad.empty())
    fail("pipeline rank {}: {} activations left after the step (schedule bug)", rank_, outputs.size() + recv_act.size() + recv_grad.size());
  res.wall_seconds = seconds_since(t0);
  return res;
}

void sum_between_pipeline_ends(ProcessGroup& group, std::vector<at::Tensor>& tensors) {
  const int64_t p = group.size(), r = group.rank();
  if (p == 1 || (r != 0 && r != p - 1)) return;
  const int64_t peer = r == 0 ? p - 1 : 0;
  std::vector<at::Tensor> theirs;
  std::vector<std::shared_ptr<Work>> works;
  std::vector<at::Tensor> mine;
  for (size_t i = 0; i < tensors.size(); ++i) {
    mine.push_back(tensors[i].contiguous());
    theirs.push_back(at::empty_like(mine.back()));
    works.push_back(group.send(mine.back(), peer, kEndsTagBase + static_cast<int64_t>(i)));
    works.push_back(group.recv(theirs.back(), peer, kEndsTagBase + static_cast<int64_t>(i)));
  }
  for (auto& w : works) w->wait();
  // a + b on one end and b + a on the other: IEEE addition is commutative, so both get equal bits.
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].add_(theirs[i]);
}

double broadcast_from_last(ProcessGroup& group, double value) {
  const int64_t p = group.size(), r = group.rank();
  if (p == 1) return value;
  auto t = at::full({1}, value, at::kDouble);
  const int64_t tag = kEndsTagBase - 1;
  if (r == p - 1) {
    std::vector<std::shared_ptr<Work>> works;
    for (int64_t dst = 0; dst < p - 1; ++dst) works.push_back(group.send(t, dst, tag));
    for (auto& w : works) w->wait();
  } else {
    group.recv(t, p - 1, tag)->wait();
  }
  return t.item<double>();
}

}  // namespace strata::parallel
