// ZeRO stage 1: optimizer state sharded over the data-parallel group, around any registered
// optimizer.
//
// Layout: parallel::DataParallel (shard_grads = true) packs gradients into buckets padded to a
// multiple of dp and reduce-scatters each one, so dp rank r holds chunk r of every bucket's
// average gradient. For each parameter that overlaps this rank's chunk, Zero1 keeps a 1-D "piece"
// (a leaf tensor holding those elements, its grad a view into the reduced shard) and hands the
// pieces, grouped like the full parameters and under the same names, to the inner optimizer. A
// step updates the pieces, then all-gathers each bucket's updated values into the parameters.
// Element-wise optimizers (AdamW, Sophia) therefore produce the same parameters as unsharded.
// state() all-gathers the per-parameter entries into full tensors under the same keys the inner
// optimizer uses unsharded (collective: every dp rank must call it); load_state() keeps the
// rank's slices and re-reads the pieces from the parameters (load the parameters first).
// Checkpoints are interchangeable between zero1 on and off.
//
// Curvature refreshes (Sophia): the refresh's gradients go through the same reducer
// (optim::data_parallel_refresh: set_sync(true) + finish() after the refresh's backward), so the
// pieces' grads hold this rank's chunk of the dp-averaged estimate, and update_hessian() folds it
// into the inner optimizer's curvature state for exactly the elements this rank owns.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "optim/optimizer.hpp"
#include "parallel/data_parallel.hpp"

namespace strata::optim {

// Splits an optimizer state key "<kind>.<name>" at the longest parameter name in `names` (any map
// keyed by parameter name) that ends the key; {"", ""} when none does. Used by ZeRO-1 and by the
// trainer's sliced checkpoints, which must agree on it.
template <typename Map>
std::pair<std::string, std::string> split_state_key(const std::string& key, const Map& names) {
  std::pair<std::string, std::string> best;
  for (const auto& [name, _] : names)
    if (key.size() > name.size() + 1 && name.size() > best.second.size() &&
        key.compare(key.size() - name.size(), name.size(), name) == 0 && key[key.size() - name.size() - 1] == '.')
      best = {key.substr(0, key.size() - name.size() - 1), name};
  return best;
}

class Zero1 final : public Optimizer {
 public:
  using Factory = std::function<std::unique_ptr<Optimizer>(std::vector<ParamGroup>)>;
  // `full` are the parameter groups an unsharded optimizer would get; dp must use shard_grads.
  Zero1(parallel::DataParallel& dp, const std::vector<ParamGroup>& full, const Factory& make);

  // Call after dp.finish() (and clipping of shard_params()).
  void step(double lr) override;
  // Call after the refresh's gradients were reduced into the shards (dp.finish()).
  void update_hessian() override;
  std::map<std::string, at::Tensor> state() const override;
  void load_state(const std::map<std::string, at::Tensor>& state) override;
  int64_t hessian_interval() const override { return inner_->hessian_interval(); }
  std::string hessian_estimator() const override { return inner_->hessian_estimator(); }
  void set_tokens_per_step(double tokens) override { inner_->set_tokens_per_step(tokens); }
  std::vector<std::pair<std::string, double>> metrics(const SumReduce& reduce = {},
                                                      const MetricWeight& weight = {}) const override;
  // The inner optimizer's state, keyed by the full parameters' names (each tensor one piece's elements).
  void visit_param_state(const StateVisitor& fn) override { inner_->visit_param_state(fn); }
  // This rank's pieces (offset: the piece's first element in its parameter) and their inner state.
  void visit_step_slices(const SliceVisitor& fn) override;
  // A fresh inner optimizer over the same pieces (SPDF's dense phase restarts the optimizer; the
  // pieces, hence clipping and the tp sums that hold them, stay).
  void restart_inner(const Factory& make) { inner_ = make(inner_->groups()); }

  // This rank's pieces; their grads are the reduced gradient shard (for global-norm clipping
  // over the dp group).
  const std::vector<at::Tensor>& shard_params() const { return pieces_; }
  // The parameter (index into dp.params()) that shard_params()[k] is a piece of.
  size_t piece_param(size_t k) const { return pieces_info_.at(k).param; }
  Optimizer& inner() { return *inner_; }
  // The pieces take the parameters' current values (after parameters were loaded or edited).
  void sync_pieces();

 private:
  struct Piece {
    size_t param;       // index into dp.params()
    size_t bucket;
    int64_t at_param;   // first element within the parameter
    int64_t at_shard;   // first element within the bucket's shard
    int64_t numel;
    at::Tensor value;   // the leaf the inner optimizer updates
  };
  // Gathers per-bucket shards built by fill(piece) into full buckets, then hands each
  // parameter's slice to use(param index, flat slice).
  void gather(const std::function<at::Tensor(const Piece&)>& piece_value, at::ScalarType dtype,
              const std::function<void(size_t, const at::Tensor&)>& use) const;
  // Runs fn with the grads of pieces whose parameter had no gradient in the last reduction hidden,
  // as the unsharded optimizer would not see them either.
  void with_reduced_grads(const std::function<void()>& fn);

  parallel::DataParallel& dp_;
  std::vector<Piece> pieces_info_;
  std::vector<at::Tensor> pieces_;
  std::map<std::string, size_t> piece_of_name_;  // parameter name -> index into pieces_info_
  std::unique_ptr<Optimizer> inner_;
};

}  // namespace strata::optim
