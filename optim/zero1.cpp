#include "optim/zero1.hpp"

#include <set>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "core/error.hpp"

namespace strata::optim {

Zero1::Zero1(parallel::DataParallel& dp, const std::vector<ParamGroup>& full, const Factory& make) : dp_(dp) {
  if (!dp.options().shard_grads) fail("zero1: the data-parallel reducer must run with shard_grads = true");
  groups_ = full;  // zero_grad() clears the full parameters' gradients
  const int64_t n = dp.group().size(), r = dp.group().rank();
  std::map<const void*, std::pair<size_t, double>> group_of;  // parameter -> (group, weight decay)
  for (size_t g = 0; g < full.size(); ++g)
    for (const auto& p : full[g].params) group_of[p.unsafeGetTensorImpl()] = {g, full[g].weight_decay};
  std::vector<ParamGroup> shard_groups(full.size());
  for (size_t g = 0; g < full.size(); ++g) shard_groups[g].weight_decay = full[g].weight_decay;
  const auto& params = dp.params();
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < dp.buckets().size(); ++b) {
    const auto& bk = dp.buckets()[b];
    const int64_t chunk = bk.padded / n, lo = r * chunk, hi = lo + chunk;
    for (size_t s = 0; s < bk.params.size(); ++s) {
      const size_t i = bk.params[s];
      const auto& [name, p] = params[i];
      const int64_t a = std::max(lo, bk.offsets[s]), e = std::min(hi, bk.offsets[s] + p.numel());
      if (a >= e) continue;
      auto it = group_of.find(p.unsafeGetTensorImpl());
      if (it == group_of.end()) fail("zero1: parameter '{}' is in no optimizer group", name);
      Piece pc{i, b, a - bk.offsets[s], a - lo, e - a, {}};
      pc.value = p.detach().reshape({-1}).narrow(0, pc.at_param, pc.numel).clone().set_requires_grad(true);
      pc.value.mutable_grad() = bk.shard.narrow(0, pc.at_shard, pc.numel);
      piece_of_name_[name] = pieces_info_.size();
      shard_groups[it->second.first].names.push_back(name);
      shard_groups[it->second.first].params.push_back(pc.value);
      pieces_.push_back(pc.value);
      pieces_info_.push_back(std::move(pc));
    }
  }
  if (pieces_.empty())
    fail("zero1: dp rank {} of {} holds no parameter elements (the model is smaller than the dp degree)", r, n);
  std::vector<ParamGroup> nonempty;
  for (auto& g : shard_groups)
    if (!g.params.empty()) nonempty.push_back(std::move(g));
  inner_ = make(std::move(nonempty));
}

void Zero1::gather(const std::function<at::Tensor(const Piece&)>& piece_value, at::ScalarType dtype,
                   const std::function<void(size_t, const at::Tensor&)>& use) const {
  const int64_t n = dp_.group().size();
  const auto& buckets = dp_.buckets();
  std::vector<at::Tensor> shards, fulls;
  std::vector<std::shared_ptr<parallel::Work>> works;
  auto opts = buckets.front().flat.options().dtype(dtype);
  for (const auto& bk : buckets) {
    shards.push_back(at::zeros({bk.padded / n}, opts));
    fulls.push_back(at::empty({bk.padded}, opts));
  }
  for (const auto& pc : pieces_info_) shards[pc.bucket].narrow(0, pc.at_shard, pc.numel).copy_(piece_value(pc));
  for (size_t b = 0; b < buckets.size(); ++b) works.push_back(dp_.group().all_gather_flat(fulls[b], shards[b]));
  for (auto& w : works) w->wait();
  for (size_t b = 0; b < buckets.size(); ++b)
    for (size_t s = 0; s < buckets[b].params.size(); ++s) {
      const size_t i = buckets[b].params[s];
      use(i, fulls[b].narrow(0, buckets[b].offsets[s], dp_.params()[i].second.numel()));
    }
}

void Zero1::with_reduced_grads(const std::function<void()>& fn) {
  std::vector<size_t> hidden;
  for (size_t k = 0; k < pieces_info_.size(); ++k)
    if (!dp_.has_grad(pieces_info_[k].param)) {
      pieces_[k].mutable_grad() = at::Tensor();
      hidden.push_back(k);
    }
  auto restore = [&] {
    for (size_t k : hidden) {
      const auto& pc = pieces_info_[k];
      pieces_[k].mutable_grad() = dp_.buckets()[pc.bucket].shard.narrow(0, pc.at_shard, pc.numel);
    }
  };
  try {
    fn();
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

void Zero1::step(double lr) {
  // Parameters without a gradient this step are skipped, as the unsharded optimizer skips them.
  with_reduced_grads([&] { inner_->step(lr); });
  torch::NoGradGuard no_grad;
  gather([](const Piece& pc) { return pc.value; }, dp_.buckets().front().flat.scalar_type(),
         [&](size_t i, const at::Tensor& flat) {
           auto& p = dp_.params()[i].second;
           p.view({-1}).copy_(flat);
         });
}

void Zero1::update_hessian() {
  with_reduced_grads([&] { inner_->update_hessian(); });
}

void Zero1::sync_pieces() {
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < pieces_info_.size(); ++k) {
    const auto& pc = pieces_info_[k];
    pieces_[k].copy_(dp_.params()[pc.param].second.detach().reshape({-1}).narrow(0, pc.at_param, pc.numel));
  }
}

void Zero1::visit_step_slices(const SliceVisitor& fn) {
  std::map<std::string, std::vector<at::Tensor*>> state;
  inner_->visit_param_state([&](const std::string& name, at::Tensor& t) { state[name].push_back(&t); });
  for (size_t k = 0; k < pieces_info_.size(); ++k) {
    const auto& name = dp_.params()[pieces_info_[k].param].first;
    StepSlice s{name, pieces_info_[k].at_param, pieces_[k], state[name]};
    fn(s);
  }
}

std::vector<std::pair<std::string, double>> Zero1::metrics(const SumReduce& reduce, const MetricWeight& weight) const {
  auto group = dp_.group_ptr();
  SumReduce over_dp = [group, reduce](at::Tensor& t) {
    group->all_reduce(t, parallel::ReduceOp::Sum)->wait();
    if (reduce) reduce(t);
  };
  return inner_->metrics(over_dp, weight);  // the inner groups keep the parameter names
}

std::map<std::string, at::Tensor> Zero1::state() const {
  torch::NoGradGuard no_grad;
  auto local = inner_->state();
  // Split keys into per-parameter entries ("<kind>.<parameter name>") and everything else.
  std::set<std::string> kinds;
  std::map<std::string, at::Tensor> out;
  std::map<std::string, at::ScalarType> dtypes;
  for (const auto& [key, t] : local) {
    auto [kind, name] = split_state_key(key, piece_of_name_);
    if (name.empty()) {
      out[key] = t;  // counters and the like: equal on every dp rank
    } else {
      kinds.insert(kind);
      dtypes[kind] = t.scalar_type();
    }
  }
  // Every rank has pieces, and the inner optimizer keeps the same kinds for each, so all ranks
  // gather the same kinds in the same (sorted) order.
  for (const auto& kind : kinds) {
    const at::ScalarType dtype = dtypes.at(kind);
    gather(
        [&](const Piece& pc) {
          auto it = local.find(kind + "." + dp_.params()[pc.param].first);
          if (it == local.end()) fail("zero1: inner optimizer state has no '{}.{}'", kind, dp_.params()[pc.param].first);
          return it->second.reshape({-1});
        },
        dtype,
        [&](size_t i, const at::Tensor& flat) {
          const auto& [name, p] = dp_.params()[i];
          out[kind + "." + name] = flat.clone().view(p.sizes());
        });
  }
  return out;
}

void Zero1::load_state(const std::map<std::string, at::Tensor>& state) {
  std::map<std::string, at::Tensor> mine;
  std::map<std::string, size_t> param_index;
  for (size_t i = 0; i < dp_.params().size(); ++i) param_index[dp_.params()[i].first] = i;
  for (const auto& [key, t] : state) {
    auto [kind, name] = split_state_key(key, param_index);
    if (name.empty()) {
      mine[key] = t;
      continue;
    }
    auto pit = piece_of_name_.find(name);
    if (pit == piece_of_name_.end()) continue;  // another rank's elements
    const auto& pc = pieces_info_[pit->second];
    const int64_t want = dp_.params()[param_index.at(name)].second.numel();
    if (t.numel() != want)
      fail("zero1: optimizer state '{}' has {} elements but parameter '{}' has {}", key, t.numel(), name, want);
    mine[key] = t.reshape({-1}).narrow(0, pc.at_param, pc.numel).clone();
  }
  inner_->load_state(mine);
  sync_pieces();  // the caller loaded the parameters first; the inner optimizer steps the pieces
}

}  // namespace strata::optim
