// compare_runs RUN_A RUN_B TOL: compares two training runs' per-step losses (metrics.jsonl) and
// final weights (model.* of the newest checkpoint); exits 1 when a loss differs by more than TOL
// relative or a weight element by more than TOL (absolute, weights are O(0.1)). Prints the maxima.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "checkpoint/checkpoint.hpp"

namespace {

std::vector<double> losses(const std::string& run) {
  std::ifstream in(run + "/metrics.jsonl");
  if (!in) throw std::runtime_error("cannot read " + run + "/metrics.jsonl");
  std::vector<double> out;
  std::regex re("\"loss\":\\s*([-+0-9.eE]+)");
  std::string line;
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_search(line, m, re)) out.push_back(std::stod(m[1]));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s RUN_A RUN_B TOL\n", argv[0]);
    return 2;
  }
  try {
    const std::string a = argv[1], b = argv[2];
    const double tol = std::stod(argv[3]);
    auto la = losses(a), lb = losses(b);
    if (la.size() != lb.size() || la.empty()) {
      std::printf("FAIL: %zu vs %zu logged losses\n", la.size(), lb.size());
      return 1;
    }
    double loss_rel = 0;
    for (size_t i = 0; i < la.size(); ++i) loss_rel = std::max(loss_rel, std::abs(la[i] - lb[i]) / std::abs(lb[i]));
    auto ca = strata::checkpoint::latest_checkpoint(a + "/checkpoints"), cb = strata::checkpoint::latest_checkpoint(b + "/checkpoints");
    if (!ca || !cb) {
      std::printf("FAIL: missing checkpoint\n");
      return 1;
    }
    auto sa = strata::checkpoint::load_checkpoint(*ca), sb = strata::checkpoint::load_checkpoint(*cb);
    double wdiff = 0;
    size_t n = 0;
    for (const auto& [k, t] : sb.tensors) {
      if (k.rfind("model.", 0) != 0) continue;
      auto it = sa.tensors.find(k);
      if (it == sa.tensors.end()) {
        std::printf("FAIL: %s missing in %s\n", k.c_str(), a.c_str());
        return 1;
      }
      wdiff = std::max(wdiff, (it->second.to(at::kDouble) - t.to(at::kDouble)).abs().max().item<double>());
      ++n;
    }
    std::printf("%zu steps: max relative loss difference %.3g; %zu weight tensors: max abs difference %.3g (final loss %.6f vs %.6f)\n",
                la.size(), loss_rel, n, wdiff, la.back(), lb.back());
    return loss_rel <= tol && wdiff <= tol && n > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare_runs: %s\n", e.what());
    return 2;
  }
}
