#include "trainer/pipeline_train.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "data/sampler.hpp"
#include "optim/grad_clip.hpp"
#include "trainer/autocast.hpp"
#include "trainer/fused_loss.hpp"

namespace strata::trainer {
namespace {

// Tags below 1 << 28 belong to the schedule's messages, [1 << 28, 1 << 29) to pipeline_runtime's
// helpers; evaluation and checkpoint gathers use their own ranges above.
constexpr int64_t kEvalTagBase = int64_t{1} << 29;
constexpr int64_t kGatherTagBase = int64_t{1} << 30;

// Named tensors point-to-point: a [2] length message, an int64 header (dtype, ndim, dims per
// tensor), the names as bytes ('\n'-separated), then each tensor. All on `device` (Gloo: CPU; NCCL:
// the GPU).
void send_named(parallel::ProcessGroup& g, int64_t dst, const std::vector<std::pair<std::string, at::Tensor>>& items,
                at::Device device) {
  std::vector<int64_t> header;
  std::string names;
  std::vector<at::Tensor> keep;
  for (const auto& [name, t] : items) {
    header.push_back(static_cast<int64_t>(t.scalar_type()));
    header.push_back(t.dim());
    for (auto d : t.sizes()) header.push_back(d);
    names += name + "\n";
  }
  auto i64 = at::TensorOptions().dtype(at::kLong).device(device);
  keep.push_back(at::tensor({static_cast<int64_t>(header.size()), static_cast<int64_t>(names.size())}, at::kLong).to(device));
  keep.push_back(at::tensor(header, at::kLong).to(i64));
  keep.push_back(at::from_blob(names.data(), {static_cast<int64_t>(names.size())}, at::kByte).clone().to(device));
  for (const auto& [_, t] : items) keep.push_back(t.detach().to(device).contiguous());
  std::vector<std::shared_ptr<parallel::Work>> works;
  for (size_t i = 0; i < keep.size(); ++i)
    works.push_back(g.send(keep[i], dst, kGatherTagBase + static_cast<int64_t>(i)));
  for (auto& w : works) w->wait();
}

std::vector<std::pair<std::string, at::Tensor>> recv_named(parallel::ProcessGroup& g, int64_t src, at::Device device) {
  auto i64 = at::TensorOptions().dtype(at::kLong).device(device);
  auto lens = at::empty({2}, i64);
  g.recv(lens, src, kGatherTagBase)->wait();
  lens = lens.cpu();
  auto header = at::empty({lens[0].item<int64_t>()}, i64);
  auto names = at::empty({lens[1].item<int64_t>()}, at::TensorOptions().dtype(at::kByte).device(device));
  g.recv(header, src, kGatherTagBase + 1)->wait();
  g.recv(names, src, kGatherTagBase + 2)->wait();
  header = header.cpu();
  names = names.cpu();
  const auto* h = header.data_ptr<int64_t>();
  const std::string text(reinterpret_cast<const char*>(names.data_ptr<uint8_t>()), names.numel());
  std::vector<std::pair<std::string, at::Tensor>> out;
  size_t pos = 0, name_pos = 0;
  while (pos < static_cast<size_t>(header.numel())) {
    const auto dtype = static_cast<at::ScalarType>(h[pos]);
    const int64_t ndim = h[pos + 1];
    std::vector<int64_t> dims(h + pos + 2, h + pos + 2 + ndim);
    pos += 2 + ndim;
    const size_t nl = text.find('\n', name_pos);
    if (nl == std::string::npos) fail("pipeline checkpoint gather: malformed names from pp rank {}", src);
    auto t = at::empty(dims, at::TensorOptions().dtype(dtype).device(device));
    g.recv(t, src, kGatherTagBase + 3 + static_cast<int64_t>(out.size()))->wait();
    out.emplace_back(text.substr(name_pos, nl - name_pos), t);
    name_pos = nl + 1;
  }
  return out;
}

}  // namespace

void check_pipeline_supported(const RunConfig& cfg) {
  const auto& par = cfg.parallel;
  if (par.pp <= 1) return;
  auto refuse = [&](const std::string& what) { fail("parallel.pp = {}: {}", par.pp, what); };
  if (cfg.model.arch == "bert") refuse("model.arch = bert (masked LM) has no pipeline hooks; use gpt or llama");
  if (par.zero1) refuse("parallel.zero1 = true is not wired through the pipeline; set parallel.zero1 = false");
  // growth: a pending growth event is refused by Trainer::setup_growth (growing runs in one process);
  // a grown checkpoint trains on under pp like any other.
  // Sophia-G's refresh runs through the schedule (PipelineTrainer::loss_pass); Sophia-H's double
  // backward would have to cross the stage boundaries' point-to-point sends, which autograd does not see.
  if (cfg.optim.name == "sophia" && cfg.optim.hessian_interval > 0 && cfg.optim.hessian_estimator == "hutchinson")
    refuse("optim.hessian_estimator = hutchinson (Sophia-H's double backward does not cross pipeline stages); use "
           "optim.hessian_estimator = gnb");
  if (cfg.data.document_mask) refuse("data.document_mask = true is not supported through the pipeline");
  const auto kind = parallel::parse_pipe_schedule(par.schedule);
  if (kind == parallel::PipeScheduleKind::Interleaved) {
    if (par.virtual_stages < 2)
      refuse(fmt::format("parallel.schedule = interleaved needs parallel.virtual_stages >= 2 (got {})", par.virtual_stages));
    if (cfg.train.grad_accum % par.pp != 0)
      refuse(fmt::format("parallel.schedule = interleaved needs train.grad_accum (the micro-batches per step, {}) to be a "
                         "multiple of parallel.pp",
                         cfg.train.grad_accum));
  } else if (par.virtual_stages != 1) {
    refuse(fmt::format("parallel.virtual_stages = {} needs parallel.schedule = interleaved", par.virtual_stages));
  }
  if (par.pp * par.virtual_stages > cfg.model.n_layer)
    refuse(fmt::format("{} chunks (parallel.pp x parallel.virtual_stages) but model.n_layer = {}; every chunk needs a layer",
                       par.pp * par.virtual_stages, cfg.model.n_layer));
}

PipelineTrainer::PipelineTrainer(const RunConfig& cfg, models::LanguageModel& model, const parallel::DeviceMesh& mesh,
                                 at::Device device, NamedParams& params, const TensorParallelSetup* tp)
    : cfg_(cfg), model_(model), pp_(mesh.pp()), dp_(mesh.dp()), tp_(tp), device_(device) {
  check_pipeline_supported(cfg);
  on_main_line_ = mesh.coord().dp == 0 && mesh.coord().tp == 0;
  const auto& par = cfg.parallel;
  const int64_t p = pp_->size(), r = pp_->rank();
  if (p != par.pp) fail("pipeline: the mesh's pp group has {} ranks but parallel.pp = {}", p, par.pp);
  const int64_t chunks = p * par.virtual_stages;
  parts_ = pipeline_parts(model, chunks, par.partition, cfg.train.seq_len);
  const auto tied = pipeline_tied_params(model, p);
  tied_names_ = tied;
  {
    torch::NoGradGuard no_grad;
    NamedParams kept;
    for (auto& [name, t] : params) {
      if (pipeline_holds(model, name, parts_, p, r)) {
        kept.emplace_back(name, t);
        const bool is_tied = std::find(tied.begin(), tied.end(), name) != tied.end();
        if (is_tied) tied_.push_back(t);
        if (!is_tied || r == 0) norm_params_.push_back(t);
      } else {
        t.set_data(at::empty({0}, t.options()));  // another stage's: never read here
      }
    }
    params = kept;
    held_ = kept;
  }
  auto sched = parallel::make_schedule(parallel::parse_pipe_schedule(par.schedule), p, cfg.train.grad_accum, par.virtual_stages);
  // Sequence parallelism: each tp rank sends its own slice of the sequence (what its stage's last
  // layer leaves it and the next stage's first layer gathers), not the gathered sequence.
  const int64_t tp_size = tp_ ? tp_->plan().tp() : 1;
  const bool sp = tp_ && cfg.parallel.sequence_parallel;
  act_shape_ = {cfg.train.micro_batch, sp ? cfg.train.seq_len / tp_size : cfg.train.seq_len, cfg.model.d_model};
  runtime_ = std::make_unique<parallel::PipeRuntime>(std::move(sched), pp_, act_shape_,
                                                     at::TensorOptions().dtype(at::kFloat).device(device));
  stage_ = std::make_unique<ModelPipeStage>(model, parts_, device);
  if (cfg.reweighting.strategy != "none") {  // per-sequence losses; from the vocab shard under tp
    reweighter_ = std::make_unique<reweighting::Reweighter>(cfg.reweighting, dp_);
  }
  fused_loss_ = cfg.train.fused_loss && fused_loss_blocker(cfg, model).empty();
  stage_->set_loss_fn([this](const at::Tensor& x, const at::Tensor& targets) {
    if (fused_loss_ && !custom_loss_) {  // train.fused_loss: no [N, vocab] logits (trainer/fused_loss.hpp)
      auto loss = fused_head_loss(model_, x, targets);
      logged_.at(current_mb_) = loss.detach();
      return loss;
    }
    auto logits = model_.forward_head(x);
    if (custom_loss_) {  // loss_pass (Sophia-G's refresh)
      auto loss = custom_loss_(logits, current_mb_);
      logged_.at(current_mb_) = loss.detach();
      return loss;
    }
    if (reweighter_) {  // the same per-sequence loss and weights as the pp = 1 loop (trainer.cpp train_loss_of)
      auto r = tp_ ? reweighter_->loss(tp_->sequence_losses(logits, targets), current_step_)
                   : reweighter_->loss(logits, targets, current_step_);
      if (r.weighted) reweight_stats_.add(r.stats);
      logged_.at(current_mb_) = r.mean_loss;
      return r.loss;
    }
    // tp > 1: `logits` are this rank's vocabulary shard; the loss is reduced over the stage's tp group.
    auto loss = tp_ ? tp_->loss(logits, targets)
                    : at::cross_entropy_loss(logits.view({-1, logits.size(-1)}).to(at::kFloat), targets.view({-1}));
    logged_.at(current_mb_) = loss.detach();
    return loss;
  });
  std::string layout;
  for (int64_t c = r; c < chunks; c += p) layout += fmt::format("{}chunk {} = layers [{}, {})", layout.empty() ? "" : ", ", c,
                                                                parts_[c].begin, parts_[c].end);
  spdlog::info("pipeline: pp rank {} of {} ({} schedule, {} micro-batches = train.grad_accum, v = {}, partition {}): {}; {} "
               "parameter tensors held{}{}",
               r, p, par.schedule, cfg.train.grad_accum, par.virtual_stages, par.partition, layout, held_.size(),
               tied_.empty() ? "" : ", tied embedding shared with the other end",
               tp_ ? fmt::format("; stage tensor-parallel over tp = {} (tp rank {}), activations [{}, {}, {}]{}", tp_size,
                                 mesh.coord().tp, act_shape_[0], act_shape_[1], act_shape_[2],
                                 sp ? " (sequence-parallel slices)" : "")
                   : std::string());
}

at::Tensor PipelineTrainer::train_step(int64_t step, data::TrainingData& data, parallel::DataParallel* dp) {
  const auto& t = cfg_.train;
  const int64_t m = t.grad_accum;
  std::vector<data::Batch> batches(m);
  if (first_() || last_())  // the middle stages read activations only
    for (int64_t a = 0; a < m; ++a)
      batches[a] = data.train_batch(data::micro_batch_indices(step, a, t.micro_batch, m, dp_->rank(), dp_->size()));
  current_step_ = step;
  auto out = at::full({1}, run_schedule(std::move(batches), dp, /*timed=*/true), at::kDouble);
  reweight_row_.clear();
  if (reweighter_ && reweighter_->active(step)) {  // the stats live on the last stage; every pp rank logs them
    auto row = reweight_stats_.take();
    if (last_() && row.size() != 4) fail("pipeline rank {}: step {} produced no reweighting stats", pp_->rank(), step);
    static const char* const kKeys[] = {"reweight/entropy", "reweight/max_weight", "reweight/l_min", "reweight/l_max"};
    for (size_t i = 0; i < 4; ++i)
      reweight_row_.emplace_back(kKeys[i], parallel::broadcast_from_last(*pp_, last_() ? row[i].second : 0.0));
  }
  if (step + 1 == t.steps) log_bubble();
  return out;
}

double PipelineTrainer::loss_pass(std::vector<data::Batch> batches, const LogitsLoss& loss, parallel::DataParallel* dp) {
  if (static_cast<int64_t>(batches.size()) != cfg_.train.grad_accum)
    fail("pipeline rank {}: loss_pass got {} micro-batches, the schedule runs train.grad_accum = {}", pp_->rank(),
         batches.size(), cfg_.train.grad_accum);
  custom_loss_ = loss;
  try {
    const double sum = run_schedule(std::move(batches), dp, /*timed=*/false);
    custom_loss_ = nullptr;
    return sum;
  } catch (...) {
    custom_loss_ = nullptr;
    throw;
  }
}

bool PipelineTrainer::counts(const std::string& name) const {
  const bool tied = std::find(tied_names_.begin(), tied_names_.end(), name) != tied_names_.end();
  return !tied || first_();
}

double PipelineTrainer::run_schedule(std::vector<data::Batch> batches, parallel::DataParallel* dp, bool timed) {
  const auto& t = cfg_.train;
  const int64_t m = t.grad_accum;
  stage_->set_batches(std::move(batches));
  logged_.assign(m, at::Tensor());

  // Tracks which micro-batch the last chunk's loss belongs to (the loss hook has no mb argument).
  struct Tracking : parallel::PipeStage {
    PipelineTrainer& self;
    explicit Tracking(PipelineTrainer& s) : self(s) {}
    at::Tensor forward(int64_t chunk, int64_t mb, const at::Tensor& input) override {
      self.current_mb_ = mb;
      auto out = self.stage_->forward(chunk, mb, input);
      return out.scalar_type() == at::kFloat || out.dim() == 0 ? out : out.to(at::kFloat);
    }
  } tracking(*this);

  if (dp) dp->set_sync(false);  // gradients stay local while micro-batches accumulate
  parallel::PipeStepResult res;
  {
    AutocastScope autocast(t.dtype == "bf16", device_.type());
    res = runtime_->run_step(tracking);
  }
  if (timed && steps_run_++ > 0) {  // the first step in this process warms up allocators and connections
    wall_s_ += res.wall_seconds;
    compute_s_ += res.compute_seconds;
  }
  if (dp) {  // after the flush: every bucket reduced at once
    dp->set_sync(true);
    dp->finish();
  }
  if (!tied_.empty()) {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> grads;
    for (auto& p : tied_) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad());
    }
    parallel::sum_between_pipeline_ends(*pp_, grads);
    for (size_t i = 0; i < tied_.size(); ++i)
      if (!grads[i].is_same(tied_[i].grad())) tied_[i].mutable_grad().copy_(grads[i]);
  }
  double sum = 0;
  if (last_()) {
    at::Tensor loss_sum = at::zeros({}, at::TensorOptions().device(device_));
    for (int64_t a = 0; a < m; ++a) {
      if (!logged_[a].defined()) fail("pipeline rank {}: micro-batch {} produced no loss", pp_->rank(), a);
      loss_sum += logged_[a];
    }
    if (dp_->size() > 1) {
      loss_sum = loss_sum.reshape({1});
      dp_->all_reduce(loss_sum, parallel::ReduceOp::Avg)->wait();
    }
    sum = loss_sum.sum().item<double>();
  }
  return parallel::broadcast_from_last(*pp_, sum);
}

void PipelineTrainer::log_bubble() {
  const int64_t p = pp_->size(), r = pp_->rank();
  auto times = at::zeros({2 * p}, at::kDouble);
  times[2 * r] = wall_s_;
  times[2 * r + 1] = compute_s_;
  times = times.to(device_);
  pp_->all_reduce(times, parallel::ReduceOp::Sum)->wait();
  times = times.cpu();
  if (steps_run_ < 2 || r != 0) return;
  const auto& s = runtime_->schedule();
  const double theory = double(p - 1) / (double(s.v) * double(s.m) + double(p - 1));
  double mean = 0;
  std::string per_rank;
  for (int64_t k = 0; k < p; ++k) {
    const double wall = times[2 * k].item<double>(), idle = 1.0 - times[2 * k + 1].item<double>() / std::max(wall, 1e-12);
    mean += idle / double(p);
    per_rank += fmt::format("{}{:.4f}", k ? " " : "", idle);
  }
  spdlog::info("pipeline bubble: {} p={} m={} v={}: idle {:.4f} of wall time (mean over ranks; per rank {}), closed form "
               "(p-1)/(v*m+p-1) = {:.4f}; {} steps timed",
               to_string(s.kind), p, s.m, s.v, mean, per_rank, theory, steps_run_ - 1);
}

double PipelineTrainer::clip_grad_norm(double max_norm) {
  torch::NoGradGuard no_grad;
  double norm = 0;
  if (tp_) {  // tp shards summed over the stage's tp group, replicated tensors counted once; then over pp
    norm = tp_->plan().grad_norm(norm_params_, *pp_);
  } else {
    std::vector<at::Tensor> grads;
    for (const auto& p : norm_params_)
      if (p.grad().defined()) grads.push_back(p.grad());
    at::Tensor sq = grads.empty() ? at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device_))
                                  : at::stack(at::_foreach_norm(grads, 2)).to(at::kDouble).pow(2).sum();
    sq = sq.reshape({1}).contiguous();
    pp_->all_reduce(sq, parallel::ReduceOp::Sum)->wait();
    norm = sq.sqrt().item<double>();
  }
  std::vector<at::Tensor> held;
  for (const auto& [_, p] : held_) held.push_back(p);
  return optim::scale_grads_to_max_norm(held, norm, max_norm);
}

double PipelineTrainer::evaluate(data::TrainingData& data, std::vector<std::pair<std::string, double>>& by_dataset) {
  torch::NoGradGuard no_grad;
  model_.eval();
  const int64_t mb = cfg_.train.micro_batch, n_eval = cfg_.train.eval_batches;
  const int64_t n_src = static_cast<int64_t>(data.n_sources());
  const int64_t items = n_eval * n_src;  // item k = (eval batch k / n_src, dataset k % n_src), pp = 1's order
  const int64_t p = pp_->size(), r = pp_->rank(), C = static_cast<int64_t>(parts_.size());
  auto batch_of = [&](int64_t k) {
    std::vector<uint64_t> idx(mb);
    for (int64_t j = 0; j < mb; ++j) idx[j] = static_cast<uint64_t>((k / n_src) * mb + j);
    return data.val_batch(static_cast<size_t>(k % n_src), idx);
  };
  std::vector<double> losses(items, 0.0);
  std::vector<at::Tensor> sent;
  std::vector<std::shared_ptr<parallel::Work>> works;
  const std::vector<int64_t>& shape = act_shape_;  // [mb, seq (/ tp with sequence parallelism), d]
  {
    AutocastScope autocast(cfg_.train.dtype == "bf16", device_.type());
    // Forward-only pipelining: each rank runs its chunks in order over every item; sends are posted
    // and not waited on until the end, so a rank moves to the next item while its peer computes.
    for (int64_t c = r; c < C; c += p) {
      for (int64_t k = 0; k < items; ++k) {
        at::Tensor x;
        data::Batch b;
        if (c == 0 || c == C - 1) b = batch_of(k);
        if (c == 0) {
          x = model_.forward_embed(b.inputs.to(device_));
        } else {
          x = at::empty(shape, at::TensorOptions().dtype(at::kFloat).device(device_));
          pp_->recv(x, (c - 1) % p, kEvalTagBase + c * items + k)->wait();
        }
        x = model_.forward_layers(x, parts_[c].begin, parts_[c].end);
        if (c == C - 1 && fused_loss_) {
          losses[k] = fused_head_loss(model_, x, b.targets.to(device_)).item<double>();  // value only (no grad)
        } else if (c == C - 1) {
          auto logits = model_.forward_head(x);
          auto targets = b.targets.to(device_);
          losses[k] = (tp_ ? tp_->loss(logits, targets)
                           : at::cross_entropy_loss(logits.view({-1, logits.size(-1)}).to(at::kFloat), targets.view({-1})))
                          .item<double>();
        } else {
          sent.push_back(x.to(at::kFloat).contiguous());
          works.push_back(pp_->send(sent.back(), (c + 1) % p, kEvalTagBase + (c + 1) * items + k));
        }
      }
    }
  }
  for (auto& w : works) w->wait();
  // On the last rank, sum as pp = 1 does; then [total, per dataset...] to every pipeline rank.
  std::vector<double> out(1 + n_src, 0.0);
  if (last_())
    for (int64_t k = 0; k < items; ++k) {
      out[0] += losses[k];
      out[1 + k % n_src] += losses[k] / n_eval;
    }
  auto buf = at::tensor(out, at::kDouble).to(device_);
  pp_->broadcast(buf, p - 1)->wait();
  buf = buf.cpu();
  by_dataset.clear();
  for (int64_t d = 0; d < n_src; ++d) by_dataset.push_back({"val_loss/" + data.name(d), buf[1 + d].item<double>()});
  model_.train();
  return buf[0].item<double>() / (static_cast<double>(n_eval) * static_cast<double>(n_src));
}

std::map<std::string, at::Tensor> PipelineTrainer::gather_to_main(const NamedParams& params,
                                                                  const std::map<std::string, at::Tensor>& optim_state) {
  std::map<std::string, at::Tensor> out;
  if (!on_main_line_) return out;  // dp replicas (and tp ranks, after the tp gather) hold the same tensors
  if (pp_->rank() > 0) {
    std::vector<std::pair<std::string, at::Tensor>> items;
    for (const auto& [name, p] : params) items.emplace_back("model." + name, p);
    for (const auto& [key, t] : optim_state) items.emplace_back("optim." + key, t);
    send_named(*pp_, 0, items, device_);
    return out;
  }
  for (int64_t src = 1; src < pp_->size(); ++src)
    for (auto& [name, t] : recv_named(*pp_, src, device_)) out.emplace(name, t);
  return out;
}

}  // namespace strata::trainer
