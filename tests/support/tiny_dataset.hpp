// A prepared byte-level dataset of the synthetic corpus, in <dir>/ds, for end-to-end trainer tests.
#pragma once
#include <string>

#include "data/prep.hpp"
#include "tests/support/corpus.hpp"
#include "tests/support/temp_dir.hpp"

namespace strata::testing {

inline std::string prepare_tiny_dataset(const TempDir& dir, size_t paragraphs = 300) {
  write_text((dir / "corpus.txt").string(), synthetic_corpus(paragraphs));
  data::PrepOptions opt;
  opt.inputs = {(dir / "corpus.txt").string()};
  opt.out = (dir / "ds").string();
  data::prep_dataset(opt);
  return opt.out;
}

}  // namespace strata::testing
