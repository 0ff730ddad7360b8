// A small synthetic English-like corpus for tests: sentences drawn from a fixed grammar, so a tiny
// model can learn it in a few dozen steps. Deterministic for a seed.
#pragma once
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace strata::testing {

inline std::string synthetic_corpus(size_t paragraphs, unsigned seed = 7) {
  const std::vector<std::string> subj = {"the king", "a shepherd", "the people", "my servant", "the lord"};
  const std::vector<std::string> verb = {"went up to", "spake unto", "looked upon", "came into", "blessed"};
  const std::vector<std::string> obj = {"the city", "the mountain", "his house", "the temple", "the land"};
  std::mt19937 rng(seed);
  std::string out;
  for (size_t p = 0; p < paragraphs; ++p) {
    for (int s = 0; s < 4; ++s) {
      out += subj[rng() % subj.size()] + " " + verb[rng() % verb.size()] + " " + obj[rng() % obj.size()] + ". ";
    }
    out += "\n\n";
  }
  return out;
}

inline void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace strata::testing
