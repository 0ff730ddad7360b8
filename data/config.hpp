// Where the training data comes from.
#pragma once
#include <string>

namespace strata::data {

struct DataConfig {
  std::string path;              // a dataset directory written by `strata prep`
  std::string tokenizer = "byte";
};

}  // namespace strata::data
