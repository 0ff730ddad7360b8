// Weighted mixtures of datasets with a weight schedule over training steps.
//
// Global sample index i belongs to step s = i / G (G = sequences per optimizer step) and so to the
// schedule phase containing s. Within a phase the sources are interleaved by a chain of Bresenham
// splits: source 0 takes the indices where floor(j * p0 + phi0) steps up (p0 = w0), the others
// share the rest the same way (p1 = w1 / (w1 + ... + wK-1), ...), with fixed-point arithmetic so the
// counts are exact integers. Every source's share of any run of indices is within one sample of its
// weight, and the index of i among its source's samples has a closed form, so the pick for i is a
// pure function of (seed, i) and the configuration: no state, resumable anywhere, independent of
// how the global batch is split over data-parallel ranks.
#pragma once
#include <cstdint>
#include <vector>

namespace strata::data {

struct MixturePhase {
  int64_t start_step = 0;
  std::vector<double> weights;  // one per source, >= 0, positive sum (normalised by the sampler)
};

class MixtureSampler {
 public:
  // phases: sorted by start_step, the first starting at step 0; global_batch = G.
  MixtureSampler(size_t n_sources, std::vector<MixturePhase> phases, uint64_t global_batch, uint64_t seed);

  struct Pick {
    uint32_t source = 0;
    uint64_t local = 0;  // index among the samples drawn from that source so far
  };
  Pick pick(uint64_t i) const;
  size_t n_sources() const { return n_sources_; }
  // The normalised weights in force at `step`.
  const std::vector<double>& weights_at(int64_t step) const;

 private:
  struct Level {
    uint64_t p;    // probability in units of 2^-32 (2^32 = always)
    uint64_t phi;  // phase offset in [0, 2^32)
  };
  struct Phase {
    uint64_t start_index;
    std::vector<double> weights;
    std::vector<Level> levels;   // n_sources - 1 splits
    std::vector<uint64_t> base;  // samples each source gave in earlier phases
  };
  const Phase& phase_of(uint64_t i) const;
  std::vector<uint64_t> counts(const Phase& ph, uint64_t n) const;

  size_t n_sources_;
  uint64_t global_batch_;
  std::vector<Phase> phases_;
};

}  // namespace strata::data
