#include "sparsity/sparsifier.hpp"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "core/log.hpp"
#include "sparsity/masks.hpp"

namespace strata::sparsity {

Sparsifier::Sparsifier(SparsityConfig cfg, std::vector<Prunable> prunable, int64_t total_steps, Accounting acc,
                       std::shared_ptr<parallel::ProcessGroup> shard_group)
    : cfg_(std::move(cfg)), prunable_(std::move(prunable)), total_steps_(total_steps), acc_(std::move(acc)),
      shard_group_(std::move(shard_group)) {
  if (cfg_.method != "static" && cfg_.method != "gradual")
    fail("sparsity.method = '{}' is not one of: none, static, gradual", cfg_.method);
  local_group_ = parallel::make_single_rank_group("sparsity");
  if (!shard_group_) shard_group_ = local_group_;
  matrices_ = acc_.matrices;
  if (matrices_.empty())
    for (const auto& p : prunable_) matrices_.emplace_back(p.name, full_numel(p.weight, p.shard));
  if (matrices_.empty()) fail("sparsity.method = {}: the model has no prunable Linear layers inside its blocks", cfg_.method);
  // Each held matrix in the model's list, in order (a pipeline stage holds a subsequence).
  held_of_.assign(matrices_.size(), -1);
  size_t j = 0;
  for (size_t i = 0; i < prunable_.size(); ++i) {
    while (j < matrices_.size() && matrices_[j].first != prunable_[i].name) ++j;
    if (j == matrices_.size())
      fail("sparsity: prunable matrix '{}' is not in the model's list of {} prunable matrices (or out of order)",
           prunable_[i].name, matrices_.size());
    if (matrices_[j].second != full_numel(prunable_[i].weight, prunable_[i].shard))
      fail("sparsity: prunable matrix '{}' has {} entries at full size here but {} in the model's list", prunable_[i].name,
           full_numel(prunable_[i].weight, prunable_[i].shard), matrices_[j].second);
    held_of_[j] = static_cast<int64_t>(i);
    ++j;
  }
  for (const auto& m : matrices_) prunable_entries_ += m.second;
  zeros_.assign(matrices_.size(), 0);
  keep_.resize(prunable_.size());
  full_keep_.resize(prunable_.size());
  if (cfg_.method == "gradual") {
    const double share =
        acc_.flops_per_token > 0 ? std::min(1.0, 6.0 * static_cast<double>(prunable_entries_) / acc_.flops_per_token) : 1.0;
    plan_ = plan_gradual(total_steps_, cfg_.sparsity, cfg_.start_fraction, cfg_.end_fraction, cfg_.prune_every, share);
  } else {  // static (SPDF): masks from (seed, name), applied from the start
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < matrices_.size(); ++k) zeros_[k] = zeros_for(cfg_.sparsity, matrices_[k].second);
    for (size_t i = 0; i < prunable_.size(); ++i) {
      keep_[i] = random_mask(prunable_[i], cfg_.sparsity, cfg_.seed);
      apply_mask(prunable_[i].weight, keep_[i]);
      gather_full(i);
    }
    masking_ = true;
    current_sparsity_ = cfg_.sparsity;
  }
}

int64_t Sparsifier::zeros() const {
  int64_t z = 0;
  for (auto x : zeros_) z += x;
  return z;
}

std::string Sparsifier::prunable_list() const {
  std::string out;
  for (const auto& m : matrices_) out += (out.empty() ? "" : ",") + m.first;
  return out;
}

bool Sparsifier::holds(const std::string& matrix) const {
  for (const auto& p : prunable_)
    if (p.name == matrix) return true;
  return false;
}

void Sparsifier::gather_full(size_t i) {
  const auto& sh = prunable_[i].shard;
  if (sh.dim < 0) return;
  // Every shard's (counted) part summed into a full matrix over the shard group.
  at::Tensor sum = at::zeros(full_sizes(keep_[i], sh), keep_[i].options().dtype(at::kByte));
  if (sh.counted) local_slice(sum, sh).copy_(keep_[i]);
  shard_group_->all_reduce(sum, parallel::ReduceOp::Sum)->wait();
  full_keep_[i] = sum.to(at::kBool).cpu();
}

parallel::ProcessGroup& Sparsifier::group_of(size_t i) const {
  return prunable_[i].shard.dim >= 0 ? *shard_group_ : *local_group_;
}

void Sparsifier::mask_optimizer(optim::Optimizer& opt, bool values, bool grads, bool state) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < prunable_.size(); ++i) index[prunable_[i].name] = i;
  torch::NoGradGuard no_grad;
  opt.visit_step_slices([&](optim::Optimizer::StepSlice& s) {
    auto it = index.find(s.name);
    if (it == index.end() || !keep_[it->second].defined()) return;
    const at::Tensor& keep = keep_[it->second];
    // The slice's part of the mask: the whole mask, or elements [offset, offset + n) of it flat.
    auto part = [&](const at::Tensor& t) -> at::Tensor {
      if (s.offset == 0 && t.sizes().equals(keep.sizes())) return keep;
      if (s.offset < 0 || s.offset + t.numel() > keep.numel() || !t.is_contiguous())
        fail("sparsity: optimizer slice of '{}' (elements {} + {}, shape {}) does not fit its mask of shape {}", s.name,
             s.offset, t.numel(), t.sizes(), keep.sizes());
      return keep.reshape({-1}).narrow(0, s.offset, t.numel()).view(t.sizes());
    };
    if (values) apply_mask(s.value, part(s.value));
    if (grads && s.value.grad().defined()) apply_mask(s.value.mutable_grad(), part(s.value.grad()));
    if (state)
      for (at::Tensor* t : s.state) apply_mask(*t, part(*t));
  });
}

void Sparsifier::prune_to(double sparsity, optim::Optimizer& opt) {
  for (size_t j = 0; j < matrices_.size(); ++j) {  // other stages' matrices: their count only (same schedule)
    const int64_t z = zeros_for(sparsity, matrices_[j].second);
    if (z <= zeros_[j]) continue;
    zeros_[j] = z;
    if (held_of_[j] < 0) continue;
    const size_t i = static_cast<size_t>(held_of_[j]);
    keep_[i] = magnitude_mask(prunable_[i], keep_[i], z, group_of(i));
    gather_full(i);
    apply_mask(prunable_[i].weight, keep_[i]);
    if (prunable_[i].weight.grad().defined()) apply_mask(prunable_[i].weight.mutable_grad(), keep_[i]);
  }
  masking_ = true;
  current_sparsity_ = sparsity;
  mask_optimizer(opt, /*values=*/true, /*grads=*/true, /*state=*/true);
}

bool Sparsifier::on_step_begin(int64_t step, optim::Optimizer& opt) {
  bool rebuild = false;
  if (cfg_.dense_from_step >= 0 && step >= cfg_.dense_from_step && !dense_phase_) {
    dense_phase_ = true, masking_ = false, rebuild = true;
    std::fill(zeros_.begin(), zeros_.end(), 0);
    for (auto& k : keep_) k = at::Tensor();
    for (auto& k : full_keep_) k = at::Tensor();
    current_sparsity_ = 0;
    spdlog::info("sparsity: step {}: masks dropped, dense fine-tuning with a fresh optimizer", step);
  } else if (cfg_.method == "gradual" && !dense_phase_ && step < static_cast<int64_t>(plan_.sparsity.size()) &&
             plan_.sparsity[step] > current_sparsity_) {
    prune_to(plan_.sparsity[step], opt);
  }
  const double z = static_cast<double>(zeros());
  steps_ += 1;
  nonzero_sum_ += static_cast<double>(acc_.total_params) - z;
  eff_flops_ += acc_.tokens_per_step * (acc_.flops_per_token - 6.0 * z);
  return rebuild;
}

void Sparsifier::after_backward(optim::Optimizer& opt) {
  if (!masking_) return;
  for (size_t i = 0; i < prunable_.size(); ++i)
    if (prunable_[i].weight.grad().defined()) apply_mask(prunable_[i].weight.mutable_grad(), keep_[i]);
  mask_optimizer(opt, /*values=*/false, /*grads=*/true, /*state=*/false);  // ZeRO-1: the reduced shards
}

void Sparsifier::after_step(optim::Optimizer& opt) {
  if (!masking_) return;
  for (size_t i = 0; i < prunable_.size(); ++i) apply_mask(prunable_[i].weight, keep_[i]);
  mask_optimizer(opt, /*values=*/true, /*grads=*/false, /*state=*/true);
}

std::vector<std::pair<std::string, double>> Sparsifier::metrics() const {
  const double z = static_cast<double>(zeros());
  return {{"sparsity", z / static_cast<double>(prunable_entries_)},
          {"nonzero_params", static_cast<double>(acc_.total_params) - z},
          {"n_avg", steps_ > 0 ? nonzero_sum_ / steps_ : static_cast<double>(acc_.total_params) - z},
          {"eff_flops_per_token", acc_.flops_per_token - 6.0 * z},
          {"eff_flops", eff_flops_}};
}

std::map<std::string, at::Tensor> Sparsifier::state() const {
  std::map<std::string, at::Tensor> out;
  for (size_t i = 0; i < prunable_.size(); ++i)
    if (masking_ && keep_[i].defined())
      out["sparsity.mask." + prunable_[i].name] = prunable_[i].shard.dim >= 0 ? full_keep_[i] : keep_[i];
  out["sparsity.zeros"] = at::tensor(zeros_, at::kLong);
  out["sparsity.counters"] = at::tensor(std::vector<double>{steps_, nonzero_sum_, eff_flops_, current_sparsity_,
                                                            dense_phase_ ? 1.0 : 0.0, masking_ ? 1.0 : 0.0},
                                        at::kDouble);
  return out;
}

void Sparsifier::load_state(const std::map<std::string, at::Tensor>& t, const std::string& where) {
  auto get = [&](const std::string& key) -> const at::Tensor& {
    auto it = t.find(key);
    if (it == t.end()) fail("checkpoint '{}' has no '{}', which sparsity.method = {} needs", where, key, cfg_.method);
    return it->second;
  };
  auto c = get("sparsity.counters").to(at::kDouble).contiguous();
  auto z = get("sparsity.zeros").to(at::kLong).contiguous();
  if (c.numel() != 6 || z.numel() != static_cast<int64_t>(matrices_.size()))
    fail("checkpoint '{}': sparsity state holds {} counters and {} matrices; this run has 6 and {} (different model?)", where,
         c.numel(), z.numel(), matrices_.size());
  auto cv = c.data_ptr<double>();
  steps_ = cv[0], nonzero_sum_ = cv[1], eff_flops_ = cv[2], current_sparsity_ = cv[3];
  dense_phase_ = cv[4] != 0, masking_ = cv[5] != 0;
  for (size_t j = 0; j < matrices_.size(); ++j) zeros_[j] = z[static_cast<int64_t>(j)].item<int64_t>();
  for (size_t i = 0; i < prunable_.size(); ++i) {
    keep_[i] = full_keep_[i] = at::Tensor();
    if (!masking_) continue;
    const auto& m = get("sparsity.mask." + prunable_[i].name);
    const auto& sh = prunable_[i].shard;
    if (!m.sizes().equals(full_sizes(prunable_[i].weight, sh)))
      fail("checkpoint '{}': mask of '{}' has shape {} but the full weight is {}", where, prunable_[i].name, m.sizes(),
           full_sizes(prunable_[i].weight, sh));
    keep_[i] = local_slice(m.to(at::kBool), sh).contiguous().to(prunable_[i].weight.device());
    if (sh.dim >= 0) full_keep_[i] = m.to(at::kBool).cpu();
  }
}

std::unique_ptr<Sparsifier> make_sparsifier(const SparsityConfig& cfg, torch::nn::Module& model, int64_t run_seed,
                                            int64_t total_steps, Accounting acc,
                                            std::shared_ptr<parallel::ProcessGroup> shard_group) {
  SparsityConfig c = cfg;
  if (c.seed < 0) c.seed = run_seed;
  return std::make_unique<Sparsifier>(c, prunable_set(model), total_steps, acc, std::move(shard_group));
}

}  // namespace strata::sparsity
