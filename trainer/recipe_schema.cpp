#include "trainer/recipe_schema.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.hpp"

namespace strata::trainer {
namespace {

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

template <typename T>
T convert(const YAML::Node& n, const std::string& key, const std::string& type, const Origin& o) {
  if (!n.IsScalar()) fail("{}: key '{}' expects {}, got a {}", o.where, key, type, n.IsSequence() ? "list" : "mapping");
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    fail("{}: key '{}' expects {}, got '{}'", o.where, key, type, n.Scalar());
  }
}

class Builder {
 public:
  explicit Builder(std::vector<Field>& out) : out_(out) {}

  template <typename Member>
  void integer(const std::string& key, Member m, int64_t lo, int64_t hi) {
    out_.push_back({key, "an integer",
                    [=](RunConfig& c, const YAML::Node& n, const Origin& o) {
                      auto v = convert<int64_t>(n, key, "an integer", o);
                      if (v < lo || v > hi) fail("{}: {} = {} is out of range [{}, {}]", o.where, key, v, lo, hi);
                      m(c) = v;
                    },
                    [=](const RunConfig& c) { return YAML::Node(m(const_cast<RunConfig&>(c))); }});
  }
  template <typename Member>
  void real(const std::string& key, Member m, double lo, double hi) {
    out_.push_back({key, "a number",
                    [=](RunConfig& c, const YAML::Node& n, const Origin& o) {
                      auto v = convert<double>(n, key, "a number", o);
                      if (!std::isfinite(v) || v < lo || v > hi)
                        fail("{}: {} = {} is out of range [{}, {}]", o.where, key, v, lo, hi);
                      m(c) = v;
                    },
                    [=](const RunConfig& c) { return YAML::Node(m(const_cast<RunConfig&>(c))); }});
  }
  template <typename Member>
  void boolean(const std::string& key, Member m) {
    out_.push_back({key, "true or false",
                    [=](RunConfig& c, const YAML::Node& n, const Origin& o) {
                      m(c) = convert<bool>(n, key, "true or false", o);
                    },
                    [=](const RunConfig& c) { return YAML::Node(m(const_cast<RunConfig&>(c))); }});
  }
  // A string; `choices` empty means free text.
  template <typename Member>
  void text(const std::string& key, Member m, std::vector<std::string> choices = {}) {
    out_.push_back({key, "a string",
                    [=](RunConfig& c, const YAML::Node& n, const Origin& o) {
                      auto v = convert<std::string>(n, key, "a string", o);
                      if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end())
                        fail("{}: {} = '{}' is not one of: {}", o.where, key, v, fmt::join(choices, ", "));
                      m(c) = v;
                    },
                    [=](const RunConfig& c) { return YAML::Node(m(const_cast<RunConfig&>(c))); }});
  }
  // A list of strings (a scalar is taken as a list of one).
  template <typename Member>
  void texts(const std::string& key, Member m) {
    out_.push_back({key, "a list of strings",
                    [=](RunConfig& c, const YAML::Node& n, const Origin& o) {
                      std::vector<std::string> v;
                      if (n.IsScalar()) v.push_back(n.Scalar());
                      else if (n.IsSequence()) for (const auto& e : n) v.push_back(convert<std::string>(e, key, "a string", o));
                      else if (!n.IsNull()) fail("{}: key '{}' expects a list of strings, got a mapping", o.where, key);
                      m(c) = v;
                    },
                    [=](const RunConfig& c) {
                      YAML::Node out(YAML::NodeType::Sequence);
                      for (const auto& x : m(const_cast<RunConfig&>(c))) out.push_back(x);
                      out.SetStyle(YAML::EmitterStyle::Flow);
                      return out;
                    }});
  }
  template <typename Member>
  void reals(const std::string& key, Member m, size_t count, double lo, double hi) {
    out_.push_back({key, "a list of numbers",
                    [=](RunConfig& c, const YAML::Node& n, const Origin& o) {
                      if (!n.IsSequence()) fail("{}: key '{}' expects a list of {} numbers, got '{}'", o.where, key, count, scalar_text(n));
                      if (count && n.size() != count)
                        fail("{}: key '{}' expects {} numbers, got {}", o.where, key, count, n.size());
                      std::vector<double> v;
                      for (const auto& e : n) {
                        double x = convert<double>(e, key, "a number", o);
                        if (!std::isfinite(x) || x < lo || x > hi)
                          fail("{}: {} element {} is out of range [{}, {}]", o.where, key, x, lo, hi);
                        v.push_back(x);
                      }
                      m(c) = v;
                    },
                    [=](const RunConfig& c) {
                      YAML::Node out(YAML::NodeType::Sequence);
                      for (double x : m(const_cast<RunConfig&>(c))) out.push_back(x);
                      out.SetStyle(YAML::EmitterStyle::Flow);
                      return out;
                    }});
  }

 private:
  std::vector<Field>& out_;
};

constexpr int64_t kBig = std::numeric_limits<int64_t>::max() / 4;

#define M(path) [](RunConfig& c) -> auto& { return c.path; }

std::vector<Field> build() {
  std::vector<Field> f;
  Builder b(f);
  // run
  b.text("run.name", M(run.name));
  b.text("run.dir", M(run.dir));
  b.integer("run.seed", M(run.seed), 0, kBig);
  // model
  b.text("model.arch", M(model.arch), {"gpt", "llama", "bert"});
  b.integer("model.n_layer", M(model.n_layer), 1, 1024);
  b.integer("model.d_model", M(model.d_model), 1, 1 << 20);
  b.integer("model.n_head", M(model.n_head), 1, 4096);
  b.integer("model.n_kv_head", M(model.n_kv_head), 0, 4096);
  b.integer("model.d_ff", M(model.d_ff), 0, 1 << 22);
  b.integer("model.multiple_of", M(model.multiple_of), 1, 1 << 16);
  b.real("model.ffn_dim_multiplier", M(model.ffn_dim_multiplier), 0.0, 64.0);
  b.integer("model.vocab_size", M(model.vocab_size), 2, 1 << 24);
  b.integer("model.max_seq_len", M(model.max_seq_len), 1, 1 << 22);
  b.real("model.dropout", M(model.dropout), 0.0, 0.99);
  b.real("model.norm_eps", M(model.norm_eps), 0.0, 1.0);
  b.boolean("model.bias", M(model.bias));
  b.boolean("model.tie_embeddings", M(model.tie_embeddings));
  b.real("model.rope_theta", M(model.rope_theta), 1.0, 1e12);
  b.real("model.init_std", M(model.init_std), 0.0, 10.0);
  b.integer("model.type_vocab_size", M(model.type_vocab_size), 1, 1 << 20);
  // data
  b.text("data.path", M(data.path));
  b.texts("data.paths", M(data.paths));
  b.reals("data.weights", M(data.weights), 0, 0.0, 1e9);
  b.reals("data.final_weights", M(data.final_weights), 0, 0.0, 1e9);
  b.real("data.final_fraction", M(data.final_fraction), 0.0, 1.0);
  b.boolean("data.document_mask", M(data.document_mask));
  b.text("data.tokenizer", M(data.tokenizer), {"byte", "sentencepiece"});
  b.text("data.objective", M(data.objective), {"auto", "clm", "mlm"});
  b.real("data.mlm_probability", M(data.mlm_probability), 0.001, 1.0);
  // train
  b.integer("train.steps", M(train.steps), 0, kBig);
  b.integer("train.micro_batch", M(train.micro_batch), 1, 1 << 20);
  b.integer("train.grad_accum", M(train.grad_accum), 1, 1 << 20);
  b.integer("train.seq_len", M(train.seq_len), 1, 1 << 22);
  b.integer("train.log_every", M(train.log_every), 1, kBig);
  b.integer("train.eval_every", M(train.eval_every), 0, kBig);
  b.integer("train.eval_batches", M(train.eval_batches), 1, 1 << 20);
  b.integer("train.threads", M(train.threads), 0, 4096);
  b.text("train.device", M(train.device), {"auto", "cpu", "cuda"});
  b.text("train.dtype", M(train.dtype), {"fp32", "bf16"});
  b.boolean("train.activation_checkpointing", M(train.activation_checkpointing));
  b.boolean("train.fused_loss", M(train.fused_loss));
  b.boolean("train.cpu_cache", M(train.cpu_cache));
  b.text("train.init_from", M(train.init_from));
  b.text("train.on_nonfinite", M(train.on_nonfinite), {"skip", "rollback", "fail"});
  b.integer("train.nonfinite_limit", M(train.nonfinite_limit), 0, kBig);
  // optim
  b.text("optim.name", M(optim.name));
  b.real("optim.lr", M(optim.lr), 0.0, 10.0);
  b.reals("optim.betas", M(optim.betas), 2, 0.0, 0.999999999);
  b.real("optim.eps", M(optim.eps), 0.0, 1.0);
  b.real("optim.weight_decay", M(optim.weight_decay), 0.0, 10.0);
  b.real("optim.grad_clip", M(optim.grad_clip), 0.0, 1e6);
  b.text("optim.decay_rule", M(optim.decay_rule), {"matrices", "linear_only"});
  b.boolean("optim.fused", M(optim.fused));
  b.real("optim.rho", M(optim.rho), 1e-12, 1e6);
  b.integer("optim.hessian_interval", M(optim.hessian_interval), 1, kBig);
  b.text("optim.hessian_estimator", M(optim.hessian_estimator), {"gnb", "hutchinson"});
  b.text("optim.hutchinson_probe", M(optim.hutchinson_probe), {"rademacher", "gaussian"});
  // schedule
  b.text("schedule.name", M(schedule.name), {"cosine", "wsd", "constant"});
  b.integer("schedule.warmup_steps", M(schedule.warmup_steps), 0, kBig);
  b.real("schedule.min_lr_ratio", M(schedule.min_lr_ratio), 0.0, 1.0);
  b.real("schedule.decay_fraction", M(schedule.decay_fraction), 0.0, 1.0);
  b.text("schedule.decay_shape", M(schedule.decay_shape), {"linear", "1-sqrt"});
  b.integer("schedule.rewarm_steps", M(schedule.rewarm_steps), 0, kBig);
  b.integer("schedule.rewarm_from", M(schedule.rewarm_from), -1, kBig);
  // checkpoint
  b.integer("checkpoint.every", M(checkpoint.every), 0, kBig);
  b.integer("checkpoint.keep", M(checkpoint.keep), 1, 1 << 20);
  b.integer("checkpoint.keep_every", M(checkpoint.keep_every), 0, kBig);
  b.boolean("checkpoint.async", M(checkpoint.async));
  // snapshot (specs/snapshots.md): in-memory snapshots held by each node's SMP
  b.boolean("snapshot.enabled", M(snapshot.enabled));
  b.integer("snapshot.every_steps", M(snapshot.every_steps), 1, kBig);
  b.integer("snapshot.ec_k", M(snapshot.ec_k), 0, 128);
  b.integer("snapshot.ec_m", M(snapshot.ec_m), 1, 127);
  b.boolean("snapshot.shard_dp", M(snapshot.shard_dp));
  b.integer("snapshot.persist_every", M(snapshot.persist_every), 0, kBig);
  b.text("snapshot.smp_name", M(snapshot.smp_name));
  b.integer("snapshot.ranks_per_node", M(snapshot.ranks_per_node), 0, 1 << 20);
  b.integer("snapshot.port", M(snapshot.port), 1024, 65000);
  b.text("snapshot.hosts", M(snapshot.hosts));
  b.real("snapshot.smp_idle_exit_s", M(snapshot.smp_idle_exit_s), 0.0, 1e9);
  // growth (specs/growth.md)
  b.text("growth.operator", M(growth.op), {"", "g_stack", "bert2bert"});
  b.integer("growth.factor", M(growth.factor), 0, 1 << 16);
  b.integer("growth.source_n_layer", M(growth.source_n_layer), 0, 1024);
  b.reals("growth.layers", M(growth.layer_list), 0, 0.0, 1023.0);
  b.text("growth.at_tokens", M(growth.at_tokens));
  b.text("growth.map", M(growth.map), {"circular", "random"});
  b.integer("growth.seed", M(growth.seed), 0, kBig);
  b.boolean("growth.aki", M(growth.aki));
  b.text("growth.optimizer", M(growth.optimizer), {"fresh", "carry"});
  b.integer("growth.rewarm_steps", M(growth.rewarm_steps), -1, kBig);
  b.integer("growth.two_stage.block_layers", M(growth.two_stage.block_layers), 0, 1024);
  b.integer("growth.two_stage.stage1_tokens", M(growth.two_stage.stage1_tokens), 0, kBig);
  b.real("growth.two_stage.stage1_fraction", M(growth.two_stage.stage1_fraction), 0.0, 1.0);
  b.integer("growth.two_stage.seed", M(growth.two_stage.seed), 0, kBig);
  b.boolean("growth.two_stage.train_shared", M(growth.two_stage.train_shared));
  // parallel
  b.integer("parallel.tp", M(parallel.tp), 1, 4096);
  b.integer("parallel.pp", M(parallel.pp), 1, 4096);
  b.integer("parallel.dp", M(parallel.dp), 0, 1 << 20);
  b.text("parallel.backend", M(parallel.backend), {"auto", "gloo", "nccl", "mpi"});
  b.integer("parallel.timeout_s", M(parallel.timeout_s), 1, 7 * 24 * 3600);
  b.real("parallel.bucket_mb", M(parallel.bucket_mb), 0.001, 1 << 16);
  b.boolean("parallel.zero1", M(parallel.zero1));
  b.boolean("parallel.overlap", M(parallel.overlap));
  b.boolean("parallel.sequence_parallel", M(parallel.sequence_parallel));
  b.integer("parallel.vocab_multiple", M(parallel.vocab_multiple), 1, 1 << 16);
  b.text("parallel.schedule", M(parallel.schedule), {"gpipe", "1f1b", "interleaved"});
  b.integer("parallel.virtual_stages", M(parallel.virtual_stages), 1, 1024);
  b.text("parallel.partition", M(parallel.partition));  // params | flops | "3,3,2,2"

  b.text("reweighting.strategy", M(reweighting.strategy));  // none or a reweighting/ registry name
  b.real("reweighting.r", M(reweighting.r), 1e-6, 1e12);
  b.real("reweighting.r_start", M(reweighting.r_start), 0.0, 1e12);
  b.integer("reweighting.r_warmup_steps", M(reweighting.r_warmup_steps), 0, kBig);
  b.integer("reweighting.burn_in_steps", M(reweighting.burn_in_steps), 0, kBig);
  b.real("reweighting.delta", M(reweighting.delta), 1e-6, 1e6);
  b.boolean("reweighting.token_weighted", M(reweighting.token_weighted));
  // sparsity (specs/sparsity.md)
  b.text("sparsity.method", M(sparsity.method), {"none", "static", "gradual"});
  b.real("sparsity.sparsity", M(sparsity.sparsity), 0.0, 1.0);
  b.real("sparsity.start_fraction", M(sparsity.start_fraction), 0.0, 1.0);
  b.real("sparsity.end_fraction", M(sparsity.end_fraction), 0.0, 1.0);
  b.integer("sparsity.prune_every", M(sparsity.prune_every), 1, kBig);
  b.integer("sparsity.dense_from_step", M(sparsity.dense_from_step), -1, kBig);
  b.integer("sparsity.seed", M(sparsity.seed), -1, kBig);
  return f;
}
#undef M

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

const Schema& Schema::instance() {
  static const Schema s = [] {
    Schema x;
    x.fields_ = build();
    return x;
  }();
  return s;
}

const Field* Schema::find(const std::string& key) const {
  for (const auto& f : fields_)
    if (f.key == key) return &f;
  return nullptr;
}

std::vector<std::string> Schema::sections() const {
  std::vector<std::string> out;
  for (const auto& f : fields_) {
    auto s = f.key.substr(0, f.key.rfind('.'));
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

bool Schema::is_section(const std::string& key) const {
  for (const auto& f : fields_)
    if (f.key.size() > key.size() && f.key.compare(0, key.size(), key) == 0 && f.key[key.size()] == '.') return true;
  return false;
}

std::string Schema::suggest(const std::string& key) const {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  auto consider = [&](const std::string& cand) {
    size_t d = edit_distance(key, cand);
    if (d < best_d) best_d = d, best = cand;
  };
  for (const auto& f : fields_) consider(f.key);
  for (const auto& s : sections()) consider(s);
  // Also match on the last component alone (a key put in the wrong section).
  auto leaf = key.substr(key.rfind('.') + 1);
  for (const auto& f : fields_)
    if (f.key.substr(f.key.rfind('.') + 1) == leaf) return f.key;
  return best_d <= std::max<size_t>(2, key.size() / 4) ? best : "";
}

}  // namespace strata::trainer
