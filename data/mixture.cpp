#include "data/mixture.hpp"

#include <cmath>

#include "core/error.hpp"

namespace strata::data {
namespace {

constexpr uint64_t kOne = uint64_t(1) << 32;

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// How many of the level's first j indices the level's source takes.
uint64_t taken(uint64_t j, uint64_t p, uint64_t phi) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(j) * p + phi) >> 32);
}

}  // namespace

MixtureSampler::MixtureSampler(size_t n_sources, std::vector<MixturePhase> phases, uint64_t global_batch, uint64_t seed)
    : n_sources_(n_sources), global_batch_(global_batch) {
  if (n_sources == 0) fail("mixture: no datasets");
  if (global_batch == 0) fail("mixture: global batch size must be positive");
  if (phases.empty() || phases.front().start_step != 0) fail("mixture: the first phase must start at step 0");
  for (size_t p = 0; p < phases.size(); ++p) {
    auto& w = phases[p].weights;
    if (w.size() != n_sources) fail("mixture phase {}: {} weights for {} datasets", p, w.size(), n_sources);
    if (p > 0 && phases[p].start_step <= phases[p - 1].start_step)
      fail("mixture: phase {} starts at step {}, not after phase {} (step {})", p, phases[p].start_step, p - 1,
           phases[p - 1].start_step);
    double sum = 0;
    for (double x : w) {
      if (!(x >= 0) || !std::isfinite(x)) fail("mixture phase {}: weight {} is not a finite number >= 0", p, x);
      sum += x;
    }
    if (sum <= 0) fail("mixture phase {}: the weights sum to 0", p);
    Phase ph;
    ph.start_index = static_cast<uint64_t>(phases[p].start_step) * global_batch;
    for (double x : w) ph.weights.push_back(x / sum);
    double rest = 1.0;
    for (size_t k = 0; k + 1 < n_sources; ++k) {
      double q = rest > 0 ? ph.weights[k] / rest : 0.0;
      uint64_t pk = rest <= ph.weights[k] * (1 + 1e-12) ? kOne : static_cast<uint64_t>(std::llround(q * double(kOne)));
      ph.levels.push_back({std::min(pk, kOne), mix(seed ^ mix(p * 1000003 + k + 1)) & (kOne - 1)});
      rest -= ph.weights[k];
    }
    if (p == 0) {
      ph.base.assign(n_sources, 0);
    } else {
      const Phase& prev = phases_.back();
      auto c = counts(prev, ph.start_index - prev.start_index);
      ph.base = prev.base;
      for (size_t k = 0; k < n_sources; ++k) ph.base[k] += c[k];
    }
    phases_.push_back(std::move(ph));
  }
}

std::vector<uint64_t> MixtureSampler::counts(const Phase& ph, uint64_t n) const {
  std::vector<uint64_t> c(n_sources_, 0);
  for (size_t k = 0; k < ph.levels.size(); ++k) {
    c[k] = taken(n, ph.levels[k].p, ph.levels[k].phi) - taken(0, ph.levels[k].p, ph.levels[k].phi);
    n -= c[k];
  }
  c[n_sources_ - 1] = n;
  return c;
}

const MixtureSampler::Phase& MixtureSampler::phase_of(uint64_t i) const {
  size_t p = phases_.size() - 1;
  while (p > 0 && phases_[p].start_index > i) --p;
  return phases_[p];
}

MixtureSampler::Pick MixtureSampler::pick(uint64_t i) const {
  const Phase& ph = phase_of(i);
  uint64_t j = i - ph.start_index;
  for (size_t k = 0; k < ph.levels.size(); ++k) {
    const auto& l = ph.levels[k];
    uint64_t before = taken(j, l.p, l.phi) - taken(0, l.p, l.phi);
    uint64_t after = taken(j + 1, l.p, l.phi) - taken(0, l.p, l.phi);
    if (after > before) return {static_cast<uint32_t>(k), ph.base[k] + before};
    j -= before;
  }
  return {static_cast<uint32_t>(n_sources_ - 1), ph.base[n_sources_ - 1] + j};
}

const std::vector<double>& MixtureSampler::weights_at(int64_t step) const {
  return phase_of(static_cast<uint64_t>(std::max<int64_t>(step, 0)) * global_batch_).weights;
}

}  // namespace strata::data
