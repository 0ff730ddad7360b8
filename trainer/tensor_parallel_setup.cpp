#include "trainer/tensor_parallel_setup.hpp"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "parallel/vocab_parallel.hpp"

namespace strata::trainer {

std::unique_ptr<TensorParallelSetup> TensorParallelSetup::create(models::LanguageModel& model, const NamedTensors& params,
                                                                 const parallel::DeviceMesh& mesh, const RunConfig& cfg,
                                                                 at::Device device) {
  const int64_t t = mesh.tp()->size();
  if (t == 1) {
    if (cfg.parallel.sequence_parallel)
      spdlog::warn("parallel.sequence_parallel = true has no effect with parallel.tp = 1");
    return nullptr;
  }
  // What the tp path does not carry yet: refuse rather than train something else.
  auto refuse = [&](const std::string& what) {
    fail("parallel.tp = {}: {} is not supported with tensor parallelism yet (rank {})", t, what, mesh.rank());
  };
  // Sophia-G samples its labels across the vocabulary shards (optim/gnb_sampler.hpp); Sophia-H's
  // double backward passes through the twice-differentiable tp ops (parallel/tp_hutchinson.hpp).
  // A growth: section is fine here once the model is grown; a pending growth event is refused by
  // Trainer::setup_growth, which runs first.
  if (cfg.train.activation_checkpointing)
    refuse("train.activation_checkpointing = true (recomputation would replay collectives and the tp dropout stream)");

  parallel::TensorParallelOptions o;
  o.vocab_multiple = cfg.parallel.vocab_multiple;
  o.sequence_parallel = cfg.parallel.sequence_parallel;
  o.dropout_seed = static_cast<uint64_t>(cfg.run.seed);
  o.device = device.type();
  if (o.sequence_parallel && cfg.train.seq_len % t != 0)
    fail("parallel.sequence_parallel = true needs train.seq_len ({}) to be a multiple of parallel.tp ({})",
         cfg.train.seq_len, t);
  auto setup = std::unique_ptr<TensorParallelSetup>(new TensorParallelSetup());
  setup->plan_ = parallel::parallelize(model, mesh.tp(), o);
  if (!setup->plan_.has_vocab)
    fail("parallel.tp = {}: model.arch {} has no vocabulary-parallel output layer", t, cfg.model.arch);
  for (const auto& [name, p] : params)
    if (const auto* l = setup->plan_.layout_of(p)) setup->layout_by_name_[name] = l;
  spdlog::info("tensor parallel: tp = {} (group {}), {} layers sharded, vocabulary {} padded to {} ({} per rank){}", t,
               mesh.tp()->name(), setup->plan_.sharded.size(), setup->plan_.vocab.vocab, setup->plan_.vocab.padded,
               setup->plan_.vocab.local(), o.sequence_parallel ? ", sequence parallel" : "");
  return setup;
}

void TensorParallelSetup::use_zero1(const optim::Zero1& zero, const parallel::DataParallel& dp) {
  zero_pieces_ = zero.shard_params();
  zero_owners_.clear();
  for (size_t k = 0; k < zero_pieces_.size(); ++k) zero_owners_.push_back(dp.params().at(zero.piece_param(k)).second);
  zero_dp_ = &dp.group();
  // The tp sums of sync_grads() pair piece k on every tp rank: the layouts must agree.
  std::vector<int64_t> sig = {static_cast<int64_t>(zero_pieces_.size()), 0, 0};
  for (size_t k = 0; k < zero_pieces_.size(); ++k) {
    sig[1] += zero_pieces_[k].numel();
    sig[2] += static_cast<int64_t>(k + 1) * zero_pieces_[k].numel() + static_cast<int64_t>(zero.piece_param(k));
  }
  auto hi = at::tensor(sig, at::kLong).to(zero_pieces_.front().device()), lo = hi.clone();
  auto& g = *plan_.ctx->group;
  g.all_reduce(hi, parallel::ReduceOp::Max)->wait();
  g.all_reduce(lo, parallel::ReduceOp::Min)->wait();
  if (!at::equal(hi, lo))
    fail("parallel.zero1 with parallel.tp = {}: the ZeRO-1 optimizer pieces differ between tp ranks (tp rank {}, dp "
         "rank {}: {} pieces of {} elements); the tp shards must have equal shapes",
         g.size(), g.rank(), zero_dp_->rank(), sig[0], sig[1]);
  spdlog::info("tensor parallel + ZeRO-1: each tp rank's optimizer state split over its dp group of {} ({} pieces here)",
               zero_dp_->size(), zero_pieces_.size());
}

void TensorParallelSetup::sync_grads() const {
  if (zero_dp_) plan_.sync_grad_pieces(zero_pieces_, zero_owners_);
  else plan_.sync_grads();
}

double TensorParallelSetup::clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) const {
  if (!zero_dp_) return plan_.clip_grad_norm(params, max_norm);
  if (params.size() != zero_pieces_.size())
    fail("tensor parallel + ZeRO-1: clipping got {} tensors but the optimizer holds {} pieces", params.size(),
         zero_pieces_.size());
  return plan_.clip_grad_norm_pieces(params, zero_owners_, *zero_dp_, max_norm);
}

at::Tensor TensorParallelSetup::loss(const at::Tensor& local_logits, const at::Tensor& targets,
                                     bool twice_differentiable) const {
  return parallel::vocab_parallel_cross_entropy_mean(local_logits.to(at::kFloat), targets, plan_.vocab,
                                                     *plan_.ctx->group, -100, twice_differentiable);
}

reweighting::SequenceLosses TensorParallelSetup::sequence_losses(const at::Tensor& local_logits,
                                                             const at::Tensor& targets) const {
  auto flat = local_logits.reshape({-1, local_logits.size(-1)}).to(at::kFloat);
  auto token_loss = parallel::vocab_parallel_cross_entropy(flat, targets.reshape({-1}), plan_.vocab, *plan_.ctx->group);
  return reweighting::per_sequence_from_tokens(token_loss, targets);
}

NamedTensors TensorParallelSetup::full_params(const NamedTensors& params) const {
  NamedTensors out;
  for (const auto& [name, p] : params) {
    auto it = layout_by_name_.find(name);
    out.emplace_back(name, it == layout_by_name_.end() ? p : plan_.full_from_local(p, *it->second));
  }
  return out;
}

const parallel::ShardLayout* TensorParallelSetup::layout_of_key(const std::string& key) const {
  // Optimizer state is keyed "<optimizer>.<kind>.<parameter name>"; the longest matching name wins.
  const parallel::ShardLayout* best = nullptr;
  size_t best_len = 0;
  for (const auto& [name, l] : layout_by_name_)
    if (key.size() > name.size() && name.size() > best_len && key.compare(key.size() - name.size(), name.size(), name) == 0 &&
        key[key.size() - name.size() - 1] == '.') {
      best = l;
      best_len = name.size();
    }
  return best;
}

std::map<std::string, at::Tensor> TensorParallelSetup::full_optim_state(const std::map<std::string, at::Tensor>& state) const {
  std::map<std::string, at::Tensor> out;
  for (const auto& [key, v] : state) {  // std::map: the same key order on every rank, so collectives match
    const auto* l = layout_of_key(key);
    out[key] = l && v.dim() > l->dim && v.size(l->dim) == l->local ? plan_.full_from_local(v, *l) : v;
  }
  return out;
}

at::Tensor TensorParallelSetup::local_param(const std::string& name, const at::Tensor& full) const {
  auto it = layout_by_name_.find(name);
  return it == layout_by_name_.end() ? full : plan_.local_from_full(full, *it->second);
}

at::Tensor TensorParallelSetup::local_optim(const std::string& key, const at::Tensor& full) const {
  const auto* l = layout_of_key(key);
  return l && full.dim() > l->dim && full.size(l->dim) == l->full ? plan_.local_from_full(full, *l) : full;
}

}  // namespace strata::trainer
