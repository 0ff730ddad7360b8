// Multi-head self-attention: causal or bidirectional, optional padding mask, optional RoPE, and
// grouped-query attention (n_kv_head K/V heads shared by groups of query heads). The head counts are
// read from the projection shapes at run time, so a tensor-parallel shard (fewer local heads) runs
// the same code.
#pragma once
#include <optional>

#include <torch/nn/module.h>

#include "models/blocks/linear.hpp"
#include "models/config.hpp"

namespace strata::models {

// RoPE's tables for positions [offset, offset + T), each fp32 [T, hd] in the interleaved-pair
// layout: cos = (c0, c0, c1, c1, ...), sin = (-s0, s0, -s1, s1, ...) with angle p * theta^(-2i/hd).
struct RopeTables {
  at::Tensor cos, sin;
};
RopeTables rope_tables(int64_t T, int64_t hd, double theta, int64_t offset, at::Device device);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& cfg, bool causal, bool rope);
  // x [B, T, d]; key_padding_mask: bool [B, T], true = real token (optional).
  at::Tensor forward(const at::Tensor& x, const std::optional<at::Tensor>& key_padding_mask = std::nullopt);

  Linear wq{nullptr}, wk{nullptr}, wv{nullptr}, wo{nullptr};
  int64_t head_dim;
  bool causal, rope;
  double rope_theta, dropout;

 private:
  // RoPE tables of the last sequence length and device (constants, no gradient), shared by q and k.
  int64_t rope_T_ = -1;
  at::Device rope_device_{at::kCPU};
  RopeTables rope_tables_;
};
TORCH_MODULE(Attention);

// Applies rotary position embedding (Meta's interleaved-pair layout) to x [B, H, T, hd] in fp32:
// x * cos + swap_pairs(x) * sin, which rounds exactly as (x0 cos - x1 sin, x0 sin + x1 cos).
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables);
at::Tensor apply_rope(const at::Tensor& x, double theta, int64_t position_offset = 0);

// While alive, scaled_dot_product_attention takes its math kernel: the flash, memory-efficient and
// cuDNN kernels have no second derivative, so double backward (Sophia-H's Hessian-vector products)
// needs it. The user's kernel choice is restored on destruction, also when an exception unwinds.
class MathAttentionScope {
 public:
  MathAttentionScope();
  ~MathAttentionScope();
  MathAttentionScope(const MathAttentionScope&) = delete;
  MathAttentionScope& operator=(const MathAttentionScope&) = delete;

 private:
  bool flash_, mem_efficient_, cudnn_;
};

}  // namespace strata::models
