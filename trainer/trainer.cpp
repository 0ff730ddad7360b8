#include "trainer/trainer.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/autograd.h>

#include "checkpoint/checkpoint.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "models/blocks/attention.hpp"
#include "models/blocks/linear.hpp"
#include "models/activation_checkpoint.hpp"
#include "models/flops.hpp"
#include "optim/grad_clip.hpp"
#include "parallel/tp_hutchinson.hpp"
#include "parallel/world.hpp"
#include "optim/hessian.hpp"
#include "optim/schedule.hpp"
#include "optim/sophia.hpp"
#include "optim/zero1.hpp"
#include "trainer/autocast.hpp"
#include "trainer/cpu_allocator.hpp"
#include "trainer/device_info.hpp"
#include "trainer/fused_loss.hpp"
#include "trainer/hf_interchange.hpp"
#include "trainer/recipe.hpp"
#include "trainer/sparsity_hook.hpp"
#include "trainer/tensor_parallel_setup.hpp"

namespace strata::trainer {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

at::Device setup_device(const TrainSection& t) {
  int threads = t.threads > 0 ? static_cast<int>(t.threads) : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(1, threads));
  bool cuda = at::hasCUDA();
  if (t.device == "cuda" && !cuda) fail("train.device = cuda but no CUDA device is available");
  const at::Device device = (t.device == "cuda" || (t.device == "auto" && cuda)) ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  // On CPU the step's large buffers come back from a cache instead of fresh, zero-filled pages.
  if (device.is_cpu() && (t.cpu_cache || cpu_caching_allocator_active())) {
    CpuCacheOptions cache;
    cache.enabled = t.cpu_cache;
    install_cpu_caching_allocator(cache);
  }
  return device;
}

Trainer::Trainer(RunConfig cfg, bool resume) : cfg_(std::move(cfg)) {
  device_ = setup_device(cfg_.train);
  check_pipeline_supported(cfg_);  // parallel.pp > 1: refuse what the pipeline does not run, naming the keys
  // BERT trains on masked-LM batches (data/mlm.hpp); causal models on next-token targets.
  cfg_.data.objective = data::resolve_objective(cfg_.data.objective, cfg_.model.arch == "bert", cfg_.model.arch);
  {  // one dataset or a weighted mixture (data.paths), each with its fixed validation set
    const auto& par = cfg_.parallel;
    const int64_t dp = par.dp > 0 ? par.dp : std::max<int64_t>(1, parallel::world_from_env().size / (par.tp * par.pp));
    data_ = std::make_unique<data::TrainingData>(cfg_.data, cfg_.train.seq_len, cfg_.run.seed, cfg_.train.steps,
                                                 cfg_.train.micro_batch * cfg_.train.grad_accum * dp);
    data::check_model_vocab(data_->manifest(), data_->path(0), cfg_.model.vocab_size);
    if (cfg_.data.document_mask)
      fail("data.document_mask = true needs a model that masks attention across documents (Batch::doc_ids); "
           "model.arch '{}' does not take document ids yet",
           cfg_.model.arch);
    train_ds_ = std::make_unique<data::TokenDataset>(data_->path(0), "train");
  }

  parallel::RuntimeOptions ro;
  ro.backend = cfg_.parallel.backend;
  ro.timeout = std::chrono::seconds(cfg_.parallel.timeout_s);
  ro.cuda = device_.is_cuda();
  runtime_ = parallel::Runtime::init(parallel::world_from_env(), ro);
  mesh_ = std::make_unique<parallel::DeviceMesh>(*runtime_, cfg_.parallel);
  guard_ = std::make_unique<StepGuard>(cfg_.train.on_nonfinite, cfg_.train.nonfinite_limit, runtime_->world_group().get(),
                                       runtime_->world().rank, device_);

  if (cfg_.growth.enabled()) setup_growth(resume);
  at::manual_seed(cfg_.run.seed);
  model_ = models::make_model(growth_pending_ ? growth_source_ : cfg_.model);
  model_->init_weights(cfg_.run.seed);
  model_->to(device_);
  for (auto& kv : model_->named_parameters()) params_.emplace_back(kv.key(), kv.value());
  two_stage_ = make_two_stage_hook(cfg_, std::max<int64_t>(0, growth_step_), parallel::world_from_env().size);
  if (!cfg_.train.init_from.empty()) load_model_weights(cfg_.train.init_from, params_);
  tp_ = TensorParallelSetup::create(*model_, params_, *mesh_, cfg_, device_);  // parallel.tp > 1: shard in place
  if (cfg_.train.activation_checkpointing)
    spdlog::info("activation checkpointing: {} blocks recompute their forward pass in backward",
                 models::set_activation_checkpointing(*model_, true));
  // sparsity.method != none: the whole model's parameter and prunable-matrix counts, taken before the
  // pipeline frees the other stages' parameters (metrics equal pp = 1's; trainer/sparsity_hook.hpp).
  sparsity::Accounting sparsity_acc;
  if (cfg_.sparsity.method != "none") sparsity_acc = sparsity_accounting(cfg_, *model_, mesh_->dp()->size(), tp_.get());
  // parallel.pp > 1: keep this rank's chunks only (params_ narrows to them; trainer/pipeline_train.hpp).
  if (cfg_.parallel.pp > 1) pipe_ = std::make_unique<PipelineTrainer>(cfg_, *model_, *mesh_, device_, params_, tp_.get());
  std::set<std::string> linear_weights;  // for optim.decay_rule = linear_only
  for (const auto& kv : model_->named_modules())
    if (dynamic_cast<const models::LinearImpl*>(kv.value().get()))
      linear_weights.insert(kv.key().empty() ? "weight" : kv.key() + ".weight");
  auto groups = optim::make_param_groups(params_, cfg_.optim.weight_decay, optim::parse_decay_rule(cfg_.optim.decay_rule),
                                         linear_weights);
  for (auto& [_, p] : params_) clip_params_.push_back(p);
  if (mesh_->dp()->size() > 1 || cfg_.parallel.zero1) {
    {  // every dp rank starts from dp rank 0's weights
      torch::NoGradGuard no_grad;
      for (auto& [_, p] : params_) mesh_->dp()->broadcast(p, 0)->wait();
    }
    parallel::DataParallelOptions dpo;
    dpo.bucket_mb = cfg_.parallel.bucket_mb;
    dpo.shard_grads = cfg_.parallel.zero1;
    dpo.overlap = cfg_.parallel.overlap;
    dp_ = std::make_unique<parallel::DataParallel>(params_, mesh_->dp(), dpo);
    spdlog::info("data parallel: dp = {}, {} gradient buckets of <= {} MB, {}{}", mesh_->dp()->size(), dp_->buckets().size(),
                 cfg_.parallel.bucket_mb, cfg_.parallel.zero1 ? "reduce-scatter + ZeRO-1 sharded optimizer" : "all-reduce",
                 cfg_.parallel.overlap ? ", overlapped with backward" : ", after backward");
  }
  if (cfg_.parallel.zero1) {
    auto zero = std::make_unique<optim::Zero1>(*dp_, groups, [&](std::vector<optim::ParamGroup> g) {
      return optim::make_optimizer(cfg_.optim, std::move(g));
    });
    clip_params_ = zero->shard_params();
    clip_group_ = mesh_->dp().get();
    if (tp_) tp_->use_zero1(*zero, *dp_);  // tp sums and the global norm act on these pieces
    opt_ = std::move(zero);
  } else {
    opt_ = optim::make_optimizer(cfg_.optim, std::move(groups));
  }
  opt_->set_tokens_per_step(static_cast<double>(cfg_.train.micro_batch * cfg_.train.grad_accum * cfg_.train.seq_len *
                                                mesh_->dp()->size()));
  if (opt_->hessian_interval() > 0) {
    // A different sampler seed gives refresh batches without touching the training order.
    hessian_loader_ = std::make_unique<data::BatchLoader>(*train_ds_, cfg_.train.seq_len,
                                                          cfg_.run.seed ^ 0x9E3779B97F4A7C15ULL, true);
    // The same generator state on every dp rank: GNB gives each label position of the global batch
    // its own uniform (so ranks sample independently, spec §3) and the refresh is the same for any
    // dp degree (optim/hessian.hpp); checkpoints keep rank 0's state, which is every rank's.
    hessian_gen_ = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg_.run.seed) + 0x50F1A);
    spdlog::info("optimizer {} ({} estimator, refresh every {} steps); weight decay rule {}", cfg_.optim.name,
                 opt_->hessian_estimator(), opt_->hessian_interval(), cfg_.optim.decay_rule);
  }
  // sparsity.method != none: masks for this rank's (pipeline stage's) prunable matrices.
  sparsifier_ = make_trainer_sparsifier(cfg_, *model_, std::move(sparsity_acc), params_, is_main(), tp_.get());
  if (sparsifier_) sync_zero1_pieces();  // static masks zeroed weights that ZeRO-1 had already copied into its pieces

  if (cfg_.reweighting.strategy != "none") {  // reweighting/reweighter.hpp; weights over the dp group
    reweighter_ = std::make_unique<reweighting::Reweighter>(cfg_.reweighting, mesh_->dp());
    spdlog::info("reweighting: {} (r = {}{}, delta = {}, {} form) after {} burn-in steps, over {} dp ranks x {} sequences "
                 "per micro-step",
                 cfg_.reweighting.strategy, cfg_.reweighting.r,
                 cfg_.reweighting.r_start > 0 ? fmt::format(" from {} over {} steps", cfg_.reweighting.r_start,
                                                            cfg_.reweighting.r_warmup_steps)
                                              : std::string(),
                 cfg_.reweighting.delta, cfg_.reweighting.token_weighted ? "token-weighted" : "sequence",
                 cfg_.reweighting.burn_in_steps, mesh_->dp()->size(), cfg_.train.micro_batch);
  }
  fused_loss_ = use_fused_loss();
  fs::create_directories(cfg_.run.dir);
  if (cfg_.snapshot.enabled)  // starts the node's SMP if none runs (trainer/snapshot_hook.hpp)
    snapshot_ = std::make_unique<SnapshotHook>(cfg_.snapshot, cfg_.run.dir, cfg_.checkpoint, cfg_.train.steps,
                                               *runtime_, mesh_->dp(), snapshot_layout(), resume);
  if (resume) {
    auto latest = checkpoint::latest_checkpoint(fs::path(cfg_.run.dir) / "checkpoints");
    std::optional<checkpoint::CheckpointState> snap;
    if (snapshot_) snap = snapshot_->restore(latest);  // a snapshot newer than the disk checkpoint wins
    if (snap) {
      const auto where = fmt::format("in-memory snapshot of step {}", snap->step);
      if (per_rank_checkpoints()) restore_local_state(*snap, where);  // this rank's own state (same layout)
      else restore_state(*snap, where);
      spdlog::info("resumed from the in-memory snapshot at step {}", start_step_);
    } else if (latest) {
      restore(latest->string());
    } else {
      spdlog::warn("--resume: no checkpoint under {}/checkpoints, starting from step 0", cfg_.run.dir);
    }
  }
}

at::Tensor Trainer::loss_of(const data::Batch& b, bool twice_differentiable) {
  auto inputs = b.inputs.to(device_, /*non_blocking=*/true), targets = b.targets.to(device_, true);
  AutocastScope autocast(cfg_.train.dtype == "bf16", device_.type());
  if (fused_loss_ && !twice_differentiable) {  // the same function as below, without [N, vocab] tensors
    const int64_t blocks = prefix_blocks_ > 0 ? prefix_blocks_ : model_->config().n_layer;
    return fused_head_loss(*model_, model_->forward_layers(model_->forward_embed(inputs), 0, blocks), targets);
  }
  auto logits = prefix_blocks_ > 0 ? model_->forward_prefix(inputs, prefix_blocks_) : model_->forward(inputs);
  if (tp_) return tp_->loss(logits, targets, twice_differentiable);  // this rank's logit shard: vocab-parallel CE
  return at::cross_entropy_loss(logits.view({-1, logits.size(-1)}).to(at::kFloat), targets.view({-1}));
}

bool Trainer::use_fused_loss() {
  if (!cfg_.train.fused_loss) return false;
  if (auto why = fused_loss_blocker(cfg_, *model_); !why.empty()) {
    spdlog::warn("train.fused_loss is set but not used: {}; the loss is computed from full logits", why);
    return false;
  }
  spdlog::info("train.fused_loss: the output head and cross-entropy run in row chunks (no [N, vocab] logits held){}",
               pipe_ ? " on the last pipeline stage" : "");
  return true;
}

at::Tensor Trainer::train_loss_of(const data::Batch& b, int64_t step, at::Tensor& logged) {
  if (!reweighter_) {
    auto loss = loss_of(b);
    logged = loss.detach();
    return loss;
  }
  auto inputs = b.inputs.to(device_, true), targets = b.targets.to(device_, true);
  AutocastScope autocast(cfg_.train.dtype == "bf16", device_.type());
  auto logits = prefix_blocks_ > 0 ? model_->forward_prefix(inputs, prefix_blocks_) : model_->forward(inputs);
  // Per-sequence CE in fp32 (from the vocab shard under tp); one all-gather over dp.
  auto r = tp_ ? reweighter_->loss(tp_->sequence_losses(logits, targets), step) : reweighter_->loss(logits, targets, step);
  if (r.weighted) reweight_stats_.add(r.stats);
  logged = r.mean_loss;
  return r.loss;
}

std::vector<std::pair<std::string, double>> Trainer::refresh_hessian(int64_t step) {
  const auto& t = cfg_.train;
  const int64_t refresh = step / opt_->hessian_interval();
  const auto& dp = mesh_->dp();
  auto batch_of = [&](int64_t a) {
    auto idx = data::micro_batch_indices(refresh, a, t.micro_batch, t.grad_accum, dp->rank(), dp->size());
    auto b = hessian_loader_->get(idx);
    data_->apply_objective(b, idx);  // MLM: masked like training rows
    return b;
  };
  std::vector<at::Tensor> plist;
  for (auto& [_, p] : params_) plist.push_back(p);
  std::vector<std::pair<std::string, double>> out;
  // The estimate is taken of the dp-averaged gradient (GNB squares it afterwards), reduced by the
  // training step's reducer: under ZeRO-1 each rank gets its shard and refreshes the state it owns.
  auto comm = optim::data_parallel_refresh(*opt_, dp_.get());
  optim::VocabSplit split;
  if (tp_) {  // GNB samples across the vocabulary shards; the gradient is synced and clipped as in a step
    split = tp_->vocab_split();
    comm.vocab = &split;
    comm.sync = [&] { tp_->sync_grads(); };
    comm.clip = [&](double max_norm) { return tp_->clip_grad_norm(clip_params_, max_norm); };
    parallel::use_tensor_parallel_hutchinson(comm, tp_->plan());  // Sophia-H: probe slices, the model's <grad, u>
  }
  if (opt_->hessian_estimator() == "gnb" && pipe_) {
    // Through the pipeline schedule: the last stage takes the sampled-label loss (PipelineTrainer::loss_pass).
    opt_->zero_grad();
    const optim::GnbLabels labels{optim::draw_refresh_seed(hessian_gen_), dp->rank(), dp->size(), comm.vocab};
    std::vector<data::Batch> batches(t.grad_accum);
    for (int64_t a = 0; a < t.grad_accum; ++a) batches[a] = batch_of(a);
    const double sum = pipe_->loss_pass(
        std::move(batches), [&](const at::Tensor& logits, int64_t a) { return labels.loss(logits, a); }, dp_.get());
    if (tp_) tp_->sync_grads();
    pipe_->clip_grad_norm(cfg_.optim.grad_clip);
    opt_->update_hessian();
    opt_->zero_grad();
    out.push_back({"hessian_loss", sum / static_cast<double>(t.grad_accum)});  // dp-averaged on the last stage
  } else if (opt_->hessian_estimator() == "gnb") {
    auto logits_of = [&](int64_t a) {
      auto inputs = batch_of(a).inputs.to(device_, true);
      AutocastScope autocast(t.dtype == "bf16", device_.type());
      return model_->forward(inputs);
    };
    at::Tensor hl = at::full({1}, optim::refresh_gnb(*opt_, plist, t.grad_accum, logits_of, hessian_gen_,
                                                    cfg_.optim.grad_clip, comm),
                             at::TensorOptions().dtype(at::kDouble).device(device_));
    if (dp_) dp->all_reduce(hl, parallel::ReduceOp::Avg)->wait();  // the global batch's mean
    out.push_back({"hessian_loss", hl.cpu().item<double>()});
  } else {
    models::MathAttentionScope math_attention;  // double backward: the fused kernels have no second derivative
    optim::refresh_hutchinson(*opt_, plist, t.grad_accum, [&](int64_t a) { return loss_of(batch_of(a), true); },
                              hessian_gen_, cfg_.optim.hutchinson_probe, comm);
  }
  // win_rate / hessian_norm of the whole model: summed over tp (tensors every tp rank holds count
  // 1/tp on each) and over the pipeline stages (the tied embedding on the first stage only).
  optim::SumReduce reduce;
  optim::MetricWeight weight;
  std::map<std::string, at::Tensor> by_name(params_.begin(), params_.end());
  if (tp_ || pipe_) {
    reduce = [&](at::Tensor& sums) {
      auto d = sums.to(device_);
      if (tp_) tp_->plan().ctx->group->all_reduce(d, parallel::ReduceOp::Sum)->wait();
      if (pipe_) mesh_->pp()->all_reduce(d, parallel::ReduceOp::Sum)->wait();
      sums = d.cpu();
    };
    weight = [&](const std::string& name, int64_t numel) {
      if (pipe_ && !pipe_->counts(name)) return optim::MetricShare{0.0, 0.0};
      auto it = by_name.find(name);
      return tp_ && it != by_name.end() ? tp_->metric_share(it->second, numel)
                                        : optim::MetricShare{1.0, static_cast<double>(numel)};
    };
  }
  for (auto& kv : opt_->metrics(reduce, weight)) out.push_back(kv);
  return out;
}

double Trainer::evaluate() {
  if (pipe_) return pipe_->evaluate(*data_, val_by_dataset_);
  torch::NoGradGuard no_grad;
  model_->eval();
  const int64_t mb = cfg_.train.micro_batch;
  double total = 0;
  val_by_dataset_.clear();  // the mean over datasets is returned; each one's loss is logged too
  for (size_t d = 0; d < data_->n_sources(); ++d) val_by_dataset_.push_back({"val_loss/" + data_->name(d), 0.0});
  for (int64_t i = 0; i < cfg_.train.eval_batches; ++i) {
    std::vector<uint64_t> idx(mb);
    for (int64_t k = 0; k < mb; ++k) idx[k] = i * mb + k;
    for (size_t d = 0; d < data_->n_sources(); ++d) {
      double l = loss_of(data_->val_batch(d, idx)).item<double>();
      total += l;
      val_by_dataset_[d].second += l / cfg_.train.eval_batches;
    }
  }
  model_->train();
  return total / (cfg_.train.eval_batches * static_cast<double>(data_->n_sources()));
}

checkpoint::CheckpointState Trainer::capture_state(int64_t step) {
  return capture_state(step, opt_->state());  // collective under ZeRO-1: every rank takes part
}

checkpoint::CheckpointState Trainer::capture_state(int64_t step, std::map<std::string, at::Tensor> opt_state) {
  if (tp_) opt_state = tp_->full_optim_state(opt_state);  // tp = 1 tensors (collective over tp)
  const auto full_params = tp_ ? tp_->full_params(params_) : params_;  // collective over tp
  // Pipeline: the other stages' model.* / optim.* tensors reach world rank 0 (collective).
  const auto other_stages = pipe_ ? pipe_->gather_to_main(full_params, opt_state) : std::map<std::string, at::Tensor>{};
  checkpoint::CheckpointState st;
  st.step = step;
  st.config_yaml = dump_recipe(cfg_);
  for (const auto& [name, p] : full_params) st.tensors["model." + name] = p;
  for (const auto& [name, t] : opt_state) st.tensors["optim." + name] = t;
  for (const auto& [key, t] : other_stages) st.tensors.emplace(key, t);
  add_run_state(step, st);
  return st;
}

void Trainer::add_run_state(int64_t step, checkpoint::CheckpointState& st) {
  st.step = step;
  st.config_yaml = dump_recipe(cfg_);
  st.tensors["rng.cpu"] = at::detail::getDefaultCPUGenerator().get_state();
  if (hessian_gen_.defined()) st.tensors["rng.hessian"] = hessian_gen_.get_state();
  if (two_stage_) two_stage_->save_state(st.tensors);  // the stage-1 depth generator
  for (const auto& [k, v] : growth_meta_) st.meta[k] = v;
  if (cfg_.growth.enabled()) st.meta["growth.stage"] = growth_pending_ ? "source" : "target";
  if (sparsifier_) {  // masks, per-matrix zero counts, accumulators; the prunable set as run metadata
    for (const auto& [k, v] : sparsifier_->state()) st.tensors[k] = v;
    st.meta["sparsity.prunable"] = sparsifier_->prunable_list();
  }
  st.meta["samples_consumed"] =
      std::to_string(step * cfg_.train.micro_batch * cfg_.train.grad_accum * mesh_->dp()->size());
  if (guard_ && !guard_->skipped().empty()) st.meta["nonfinite.skipped"] = guard_->skipped_meta();
}

bool Trainer::rollback_before(int64_t done) {
  wait_for_saves();  // an asynchronous save in flight may be the checkpoint to go back to
  auto dir = checkpoint::latest_checkpoint(fs::path(cfg_.run.dir) / "checkpoints");
  if (!dir) {
    spdlog::warn("step {}: train.on_nonfinite = rollback but there is no checkpoint under {}/checkpoints yet; skipping the "
                 "step instead", done, cfg_.run.dir);
    return false;
  }
  restore(dir->string());
  guard_->add_skipped(done);
  spdlog::warn("step {}: rolled back to {} (step {}); the batch of step {} will be skipped", done, dir->string(),
               start_step_, done);
  return true;
}

void Trainer::restore_state(const checkpoint::CheckpointState& st, const std::string& dir, bool load_optimizer,
                            bool local_model) {
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : params_) {
    auto it = st.tensors.find("model." + name);
    if (it == st.tensors.end()) fail("checkpoint '{}' has no tensor 'model.{}'", dir, name);
    // Checkpoints hold tp = 1 tensors; the per-rank restore (checkpoint_io.cpp) passes this rank's parts.
    const auto& saved = tp_ && !local_model ? tp_->local_param(name, it->second) : it->second;
    if (!saved.sizes().equals(p.sizes()))
      fail("checkpoint '{}': tensor 'model.{}' has shape {} but the model expects {} (different model config?)", dir, name,
           saved.sizes(), p.sizes());
    p.copy_(saved);
  }
  std::map<std::string, at::Tensor> opt_state;
  for (const auto& [k, v] : st.tensors)
    if (k.rfind("optim.", 0) == 0) opt_state[k.substr(6)] = (tp_ ? tp_->local_optim(k.substr(6), v) : v).to(device_);
  if (load_optimizer && (!opt_state.empty() || !st.meta.count("growth.operator"))) opt_->load_state(opt_state);  // `strata grow`: fresh moments
  if (auto it = st.tensors.find("rng.cpu"); it != st.tensors.end()) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
    gen.set_state(it->second);
  }
  if (hessian_gen_.defined()) {
    auto it = st.tensors.find("rng.hessian");
    if (it == st.tensors.end()) fail("checkpoint '{}' has no 'rng.hessian' generator state, which optim.name = {} needs", dir, cfg_.optim.name);
    hessian_gen_.set_state(it->second);
  }
  if (sparsifier_) sparsifier_->load_state(st.tensors, dir);
  if (two_stage_) two_stage_->load_state(st.tensors, st.step, dir);
  if (auto it = st.meta.find("nonfinite.skipped"); it != st.meta.end() && guard_) guard_->load_skipped_meta(it->second);
  // Re-warming for continual pretraining: a new peak lr at resume restarts the warmup here.
  const auto saved = load_recipe_text(st.config_yaml, dir + " (recipe)");
  if (cfg_.schedule.rewarm_steps > 0 && cfg_.schedule.rewarm_from < 0 && saved.optim.lr != cfg_.optim.lr) {
    cfg_.schedule.rewarm_from = st.step;
    spdlog::info("schedule: re-warming from step {} to the new peak lr {:.3g} (was {:.3g}) over {} steps", st.step,
                 cfg_.optim.lr, saved.optim.lr, cfg_.schedule.rewarm_steps);
  } else if (cfg_.schedule.rewarm_from < 0 && saved.schedule.rewarm_from >= 0) {
    cfg_.schedule.rewarm_from = saved.schedule.rewarm_from;  // a re-warmed run keeps its schedule on later resumes
  }
  sync_zero1_pieces();  // trainer/checkpoint_io.cpp
  start_step_ = st.step;
}

TrainResult Trainer::run(int64_t stop_after) {
  const auto& t = cfg_.train;
  const int64_t dp_rank = mesh_->dp()->rank(), dp_size = mesh_->dp()->size();
  const int64_t tokens_per_step = t.micro_batch * t.grad_accum * t.seq_len * dp_size;  // global
  const double flops_per_token = models::flops_per_token(cfg_.model, t.seq_len);
  // MFU needs a known peak: CUDA devices in models::peak_bf16_flops' table; CPUs report GFLOP/s only.
  const int64_t world_size = parallel::world_from_env().size;
  std::optional<double> peak;
  if (device_.is_cuda()) {
    const auto name = accelerator_name(device_);
    peak = models::peak_bf16_flops(name);
    if (!peak) spdlog::warn("MFU: no peak FLOP/s known for device '{}'; logging TFLOP/s without MFU", name);
  }
  std::optional<MetricsWriter> metrics;  // rank 0 writes metrics and checkpoints
  if (is_main()) {
    // Rows carry the 1-indexed step done; the checkpoint's own row (step == start_step_) stays.
    metrics.emplace(fs::path(cfg_.run.dir) / "metrics.jsonl", start_step_ + 1);
    write_file_atomic(fs::path(cfg_.run.dir) / "config.yaml", dump_recipe(cfg_));
  }
  spdlog::info("model {}: {:.2f}M parameters, {:.1f} MFLOP/token; {} train tokens; device {}, {} threads",
               cfg_.model.arch, models::param_count(cfg_.model) / 1e6, flops_per_token / 1e6, data_->train_tokens(),
               device_.str(), at::get_num_threads());

  TrainResult res;
  const int64_t run_start = start_step_;
  model_->train();
  auto interval_start = Clock::now();
  int64_t interval_tokens = 0;
  std::vector<std::pair<std::string, double>> last_curvature;  // Sophia: the latest refresh's metrics
  for (int64_t step = start_step_; step < t.steps; ++step) {
    if (guard_->is_skipped(step + 1)) {  // rolled back past this step's non-finite batch: not computed again
      spdlog::warn("step {}: batch skipped (non-finite earlier; train.on_nonfinite = rollback)", step + 1);
      if (metrics) metrics->write({{"step", double(step + 1)}, {"skipped_nonfinite", 1.0}});
      res.losses.push_back(std::nan(""));
      res.steps_done = step + 1;
      continue;
    }
    if (growth_pending_ && step == growth_step_) grow_now(step);
    if (sparsifier_ && sparsifier_->on_step_begin(step, *opt_))  // pruning events; dense phase: fresh optimizer
      restart_optimizer(opt_, cfg_, dp_size);
    if (two_stage_) prefix_blocks_ = two_stage_->begin_step(step, params_);  // stage 1: freeze all but the trained blocks
    const double lr = optim::lr_at(cfg_.schedule, cfg_.optim.lr, step, t.steps);
    at::Tensor loss_sum = at::zeros({}, at::TensorOptions().device(device_));
    if (pipe_) loss_sum = pipe_->train_step(step, *data_, dp_.get());  // micro-batches = train.grad_accum
    for (int64_t a = 0; a < (pipe_ ? 0 : t.grad_accum); ++a) {
      auto idx = data::micro_batch_indices(step, a, t.micro_batch, t.grad_accum, dp_rank, dp_size);
      at::Tensor logged;
      auto loss = train_loss_of(data_->train_batch(idx), step, logged);
      if (a == 0 && guard_->inject_nan(step + 1)) {  // test hook (step_guard.hpp)
        loss = loss * std::nan("");
        logged = loss.detach();
      }
      const bool final_micro = a == t.grad_accum - 1;
      if (dp_) dp_->set_sync(final_micro);  // no communication on non-final micro-batches
      const auto bwd_start = Clock::now();
      (loss / static_cast<double>(t.grad_accum)).backward();
      if (dp_ && final_micro) dp_backward_s_ += std::chrono::duration<double>(Clock::now() - bwd_start).count();
      loss_sum += logged;
    }
    if (two_stage_) two_stage_->end_backward(), prefix_blocks_ = 0;  // evaluation and stage 2 run the full model
    if (dp_ && !pipe_) {
      dp_->finish();
      loss_sum = loss_sum.reshape({1});
      mesh_->dp()->all_reduce(loss_sum, parallel::ReduceOp::Avg)->wait();  // the logged loss is the global mean
    }
    if (sparsifier_) sparsifier_->after_backward(*opt_);  // gradients at pruned entries = 0 before clipping
    if (tp_) tp_->sync_grads();  // tensor parallel: shared KV heads, sequence-parallel partial gradients
    const double gnorm = pipe_ ? pipe_->clip_grad_norm(cfg_.optim.grad_clip)
                         : tp_ ? tp_->clip_grad_norm(clip_params_, cfg_.optim.grad_clip)
                               : optim::clip_grad_norm(clip_params_, cfg_.optim.grad_clip, clip_group_);
    const double loss = loss_sum.sum().item<double>() / t.grad_accum;  // the step's one host sync for the loss
    const auto verdict = guard_->check(step + 1, loss, gnorm);
    if (verdict.nonfinite) {
      const double bad = loss;
      opt_->zero_grad();
      if (guard_->on_nonfinite(step + 1, bad, gnorm) == "rollback" && rollback_before(step + 1)) {
        step = start_step_ - 1;  // the loop's ++step resumes at the checkpoint's step
        if (metrics) metrics.emplace(fs::path(cfg_.run.dir) / "metrics.jsonl", start_step_ + 1);
        res.losses.resize(static_cast<size_t>(std::max<int64_t>(0, start_step_ - run_start)));
        continue;
      }
      if (metrics) metrics->write({{"step", double(step + 1)}, {"skipped_nonfinite", 1.0}, {"lr", lr}});
      res.losses.push_back(bad);
      res.steps_done = step + 1;
      if (verdict.preempt) {
        save(step + 1);
        spdlog::warn("preempted (signal {}): checkpoint at step {} written; exiting", StepGuard::last_signal(), step + 1);
        if (is_main()) StepGuard::mark_preempted(step + 1);
        res.preempted = true;
        break;
      }
      continue;
    }
    guard_->on_good_step();
    if (snapshot_) snapshot_->before_update();  // the background snapshot copy must finish before the weights change
    opt_->step(lr);
    opt_->zero_grad();
    std::vector<std::pair<std::string, double>> curvature;
    if (optim::hessian_refresh_due(step, opt_->hessian_interval())) last_curvature = curvature = refresh_hessian(step);
    if (sparsifier_) sparsifier_->after_step(*opt_);  // weights and optimizer state at pruned entries = 0
    res.losses.push_back(loss);
    interval_tokens += tokens_per_step;
    const int64_t done = step + 1;
    std::vector<std::pair<std::string, double>> row = {{"step", double(done)}, {"loss", loss}, {"lr", lr}, {"grad_norm", gnorm}};
    row.insert(row.end(), curvature.begin(), curvature.end());
    for (auto& kv : reweight_stats_.take()) row.push_back(kv);  // reweight/{entropy,max_weight,l_min,l_max}
    if (pipe_) for (auto& kv : pipe_->take_reweight_stats()) row.push_back(kv);  // computed on the last stage
    if (sparsifier_) for (auto& kv : sparsifier_->metrics()) row.push_back(kv);  // sparsity, n_avg, eff_flops...
    if (two_stage_) for (auto& kv : two_stage_->metrics()) row.push_back(kv);  // two_stage/stage, two_stage/depth
    const bool log_now = done % t.log_every == 0 || done == t.steps;
    if (log_now) {
      double secs = std::chrono::duration<double>(Clock::now() - interval_start).count();
      double tps = interval_tokens / std::max(secs, 1e-9);
      double eta = (t.steps - done) * tokens_per_step / std::max(tps, 1e-9);
      spdlog::info("step {:>6}/{} | loss {:.4f} | lr {:.2e} | grad norm {:.3f} | {:.0f} tok/s | {:.2f} GFLOP/s | ETA {:.0f}s",
                   done, t.steps, loss, lr, gnorm, tps, tps * flops_per_token / 1e9, eta);
      if (!last_curvature.empty()) {
        std::string line;
        for (const auto& [k, v] : last_curvature) line += fmt::format("{}{} {:.4g}", line.empty() ? "" : " | ", k, v);
        spdlog::info("step {:>6} | latest hessian refresh: {}", done, line);
      }
      if (sparsifier_) spdlog::info("step {:>6} | {}", done, sparsity_log_line(*sparsifier_));
      row.push_back({"tokens_per_s", tps});
      row.push_back({"gflops", tps * flops_per_token / 1e9});
      if (device_.is_cuda()) {  // model FLOPs (spec §3); MFU against the devices' dense bf16 peak when known
        const double tflops = tps * flops_per_token / 1e12;
        row.push_back({"tflops", tflops});
        if (peak) {
          const double mfu = tflops * 1e12 / (*peak * world_size);
          spdlog::info("step {:>6} | {:.1f} TFLOP/s | MFU {:.1f}% of {} x {:.0f} TFLOP/s{}", done, tflops, 100 * mfu, world_size,
                       *peak / 1e12, t.activation_checkpointing ? " (recomputation not counted)" : "");
          row.push_back({"mfu", mfu});
        } else {
          spdlog::info("step {:>6} | {:.1f} TFLOP/s", done, tflops);
        }
      }
      interval_start = Clock::now();
      interval_tokens = 0;
    }
    if ((t.eval_every > 0 && done % t.eval_every == 0) || done == t.steps) {
      double vl = evaluate();
      res.final_val_loss = vl;
      spdlog::info("step {:>6} | val loss {:.4f}", done, vl);
      row.push_back({"val_loss", vl});
      if (data_->n_sources() > 1) row.insert(row.end(), val_by_dataset_.begin(), val_by_dataset_.end());
    }
    if (snapshot_) for (auto& kv : snapshot_->take_metrics()) row.push_back(kv);
    if (metrics) metrics->write(row);
    const bool stopping = stop_after > 0 && done == stop_after;
    if ((cfg_.checkpoint.every > 0 && done % cfg_.checkpoint.every == 0) || done == t.steps || stopping) save(done);
    if (snapshot_ && snapshot_->due(done))  // copied in the background; tp/pp/ZeRO-1: this rank's own state
      snapshot_->start(per_rank_checkpoints() ? capture_local_state(done) : capture_state(done));
    res.final_loss = loss;
    res.steps_done = done;
    if (verdict.preempt) {  // every rank saw the flag at the same step: checkpoint and leave cleanly
      const bool saved = (cfg_.checkpoint.every > 0 && done % cfg_.checkpoint.every == 0) || done == t.steps || stopping;
      if (!saved) save(done);
      spdlog::warn("preempted (signal {}): checkpoint at step {} written; exiting 0 (`strata train ... --resume` continues)",
                   StepGuard::last_signal(), done);
      if (is_main()) StepGuard::mark_preempted(done);
      res.preempted = true;
      break;
    }
    if (stopping) break;
  }
  if (dp_ && dp_->stats().steps > 0) {
    const auto& st = dp_->stats();
    spdlog::info("data parallel: {:.3f} MB reduced per step, ring estimate {:.3f} MB sent per rank per step; backward {:.3f} s, "
                 "waiting for communication {:.3f} s after it ({:.1f}% of backward + wait) over {} steps",
                 st.bytes_per_step / 1e6, st.wire_bytes_per_step / 1e6, dp_backward_s_, st.wait_s,
                 100.0 * st.wait_s / std::max(1e-12, dp_backward_s_ + st.wait_s), st.steps);
  }
  wait_for_saves();  // the final (asynchronous) checkpoint is committed before the run returns
  if (ckpt_saves_ > 0)
    spdlog::info("checkpoint: {} saves blocked training for {:.4f} s in total ({:.4f} s per save, {}){}", ckpt_saves_,
                 ckpt_blocked_s_, ckpt_blocked_s_ / ckpt_saves_, cfg_.checkpoint.async ? "asynchronous" : "synchronous",
                 cfg_.checkpoint.async ? fmt::format("; waited {:.4f} s for the last one to commit", ckpt_final_wait_s_) : "");
  if (snapshot_) snapshot_->finish();
  return res;
}

}  // namespace strata::trainer
