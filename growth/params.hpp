// Named parameter maps the growth operators work on ("blocks.3.attn.wq.weight" -> tensor, the
// names of LanguageModel::named_parameters(); checkpoints store them as "model.<name>").
#pragma once
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace strata::growth {

using ParamMap = std::map<std::string, at::Tensor>;

// Layer index of "....blocks.<i>.<rest>" (the first "blocks." in the key), or -1.
int64_t layer_of(const std::string& key);
// The key with its layer index replaced by `layer`.
std::string with_layer(const std::string& key, int64_t layer);

}  // namespace strata::growth
