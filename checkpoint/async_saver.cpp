#include "checkpoint/async_saver.hpp"

#include <utility>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"

namespace strata::checkpoint {
namespace {

// `dst` becomes a CPU copy of `src`, reusing dst's memory when shape and dtype match.
void stage(at::Tensor& dst, const at::Tensor& src) {
  at::Tensor s = src.detach();
  if (!dst.defined() || !dst.sizes().equals(s.sizes()) || dst.scalar_type() != s.scalar_type())
    dst = at::empty(s.sizes(), at::TensorOptions().dtype(s.scalar_type()).pinned_memory(s.is_cuda()));
  dst.copy_(s);
}

}  // namespace

AsyncSaver::~AsyncSaver() {
  try {
    wait();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
  }
}

void AsyncSaver::wait() {
  if (worker_.joinable()) worker_.join();
  if (error_) {
    auto e = std::exchange(error_, nullptr);
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      fail("checkpoint of step {} failed in the background: {}", step_, x.what());
    }
  }
}

void AsyncSaver::submit(const CheckpointState& state, const std::vector<OwnedSlice>& slices, Write write) {
  wait();
  std::map<std::string, at::Tensor> keep;
  for (const auto& [name, t] : state.tensors) {
    auto it = staged_.tensors.find(name);
    at::Tensor dst = it == staged_.tensors.end() ? at::Tensor() : it->second;
    stage(dst, t);
    keep[name] = dst;
  }
  staged_.tensors = std::move(keep);
  staged_.step = state.step;
  staged_.config_yaml = state.config_yaml;
  staged_.meta = state.meta;
  staged_slices_.resize(slices.size());
  for (size_t i = 0; i < slices.size(); ++i) {
    auto& d = staged_slices_[i];
    d.name = slices[i].name;
    d.global_shape = slices[i].global_shape;
    d.region = slices[i].region;
    stage(d.data, slices[i].data);
  }
  step_ = state.step;
  worker_ = std::thread([this, write = std::move(write)] {
    try {
      write(staged_, staged_slices_);
    } catch (...) {
      error_ = std::current_exception();
    }
  });
}

uint64_t AsyncSaver::staging_bytes() const {
  uint64_t n = 0;
  for (const auto& [_, t] : staged_.tensors) n += t.nbytes();
  for (const auto& s : staged_slices_) n += s.data.nbytes();
  return n;
}

}  // namespace strata::checkpoint
