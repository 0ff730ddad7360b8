// Where the training data comes from: one prepared dataset, or a weighted mixture of several with
// an optional switch to other weights for the last part of training.
#pragma once
#include <string>
#include <vector>

namespace strata::data {

struct DataConfig {
  std::string path;                   // a dataset directory written by `strata prep`
  std::vector<std::string> paths;     // or several (then data.path stays empty), mixed by `weights`
  std::vector<double> weights;        // one per path; empty = equal weights
  std::vector<double> final_weights;  // weights for the last `final_fraction` of train.steps (empty = none)
  double final_fraction = 0.0;        // e.g. 0.2: the last 20% of steps use final_weights
  bool document_mask = false;         // emit document ids / positions per sequence (Batch::doc_ids)
  std::string tokenizer = "byte";     // byte | sentencepiece: the kind the datasets must have been prepared with
};

}  // namespace strata::data
