#include "models/activation_checkpoint.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/ivalue.h>
#include <torch/autograd.h>

namespace strata::models {
namespace {

// The random-number and autocast state a block's forward pass ran under.
struct ForwardState {
  at::Tensor cpu_rng, cuda_rng;
  int cuda_device = -1;
  bool autocast_cuda = false, autocast_cpu = false;
  at::ScalarType autocast_cuda_dtype = at::kBFloat16, autocast_cpu_dtype = at::kBFloat16;

  static ForwardState capture(const at::Tensor& x) {
    ForwardState s;
    s.cpu_rng = at::detail::getDefaultCPUGenerator().get_state();
    if (x.is_cuda()) {
      s.cuda_device = x.get_device();
      s.cuda_rng = at::globalContext().defaultGenerator(x.device()).get_state();
    }
    s.autocast_cuda = at::autocast::is_autocast_enabled(at::kCUDA);
    s.autocast_cpu = at::autocast::is_autocast_enabled(at::kCPU);
    s.autocast_cuda_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
    s.autocast_cpu_dtype = at::autocast::get_autocast_dtype(at::kCPU);
    return s;
  }
  // Installs this state; returns the state it replaced (to put back afterwards).
  ForwardState install() const {
    ForwardState old;
    old.cpu_rng = at::detail::getDefaultCPUGenerator().get_state();
    at::Generator cpu = at::detail::getDefaultCPUGenerator();
    cpu.set_state(cpu_rng);
    if (cuda_device >= 0) {
      at::Generator g = at::globalContext().defaultGenerator(at::Device(at::kCUDA, cuda_device));
      old.cuda_device = cuda_device;
      old.cuda_rng = g.get_state();
      g.set_state(cuda_rng);
    }
    old.autocast_cuda = at::autocast::is_autocast_enabled(at::kCUDA);
    old.autocast_cpu = at::autocast::is_autocast_enabled(at::kCPU);
    old.autocast_cuda_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
    old.autocast_cpu_dtype = at::autocast::get_autocast_dtype(at::kCPU);
    at::autocast::set_autocast_enabled(at::kCUDA, autocast_cuda);
    at::autocast::set_autocast_enabled(at::kCPU, autocast_cpu);
    at::autocast::set_autocast_dtype(at::kCUDA, autocast_cuda_dtype);
    at::autocast::set_autocast_dtype(at::kCPU, autocast_cpu_dtype);
    return old;
  }
};

// What the backward pass needs besides the saved tensors (kept in the autograd context).
struct Recompute : torch::CustomClassHolder {
  BlockFn fn;
  ForwardState state;
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // inputs = {x, params...}
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, c10::intrusive_ptr<Recompute> rc,
                            at::TensorList inputs) {
    rc->state = ForwardState::capture(inputs[0]);
    ctx->save_for_backward(inputs.vec());
    auto y = rc->fn(inputs[0]);
    ctx->saved_data["recompute"] = c10::IValue::make_capsule(c10::intrusive_ptr<torch::CustomClassHolder>(rc));
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto rc = c10::static_intrusive_pointer_cast<Recompute>(ctx->saved_data["recompute"].toCapsule());
    auto saved = ctx->get_saved_variables();
    at::Tensor x = saved[0].detach().requires_grad_(saved[0].requires_grad());
    at::Tensor y;
    {
      torch::AutoGradMode grad_on(true);
      ForwardState outer = rc->state.install();
      try {
        y = rc->fn(x);
      } catch (...) {
        outer.install();
        throw;
      }
      outer.install();
    }
    // Differentiate with respect to whatever needs a gradient; the rest get undefined gradients.
    std::vector<at::Tensor> wrt;
    std::vector<size_t> slot;
    for (size_t i = 0; i < saved.size(); ++i) {
      const at::Tensor& t = i == 0 ? x : saved[i];
      if (t.requires_grad()) wrt.push_back(t), slot.push_back(i);
    }
    torch::autograd::variable_list grads(saved.size() + 1);  // +1: the Recompute argument
    if (!wrt.empty() && y.requires_grad()) {
      auto g = torch::autograd::grad({y}, wrt, {grad_out[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
      for (size_t k = 0; k < slot.size(); ++k) grads[slot[k] + 1] = g[k];
    }
    return grads;
  }
};

}  // namespace

at::Tensor checkpoint(const BlockFn& fn, const at::Tensor& x, const std::vector<at::Tensor>& params) {
  if (!at::GradMode::is_enabled()) return fn(x);
  auto rc = c10::make_intrusive<Recompute>();
  rc->fn = fn;
  std::vector<at::Tensor> inputs;
  inputs.reserve(params.size() + 1);
  inputs.push_back(x);
  for (const auto& p : params)
    if (p.requires_grad()) inputs.push_back(p);
  return CheckpointFunction::apply(rc, at::TensorList(inputs));
}

at::Tensor CheckpointableBlock::run_block(torch::nn::Module& self, const at::Tensor& x, const BlockFn& fn) const {
  if (!activation_checkpointing) return fn(x);
  return checkpoint(fn, x, self.parameters());
}

int64_t set_activation_checkpointing(torch::nn::Module& model, bool on) {
  int64_t n = 0;
  for (const auto& m : model.modules(/*include_self=*/false))
    if (auto* b = dynamic_cast<CheckpointableBlock*>(m.get())) b->activation_checkpointing = on, ++n;
  return n;
}

}  // namespace strata::models
