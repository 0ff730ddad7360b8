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
  // clm: targets are the inputs shifted by one; mlm: BERT masking (data/mlm.hpp) with targets = the
  // original tokens at chosen positions, -100 elsewhere; auto: mlm for bidirectional models, else clm.
  std::string objective = "auto";
  double mlm_probability = 0.15;      // share of non-special positions chosen for MLM
};

}  // namespace strata::data
