// Hugging Face interchange for the three architectures: parameter names and layouts of
// GPT2LMHeadModel, LlamaForCausalLM and BertForMaskedLM, and their config.json. Pure tensor maps
// (no files): trainer/hf_interchange.cpp reads and writes the directories.
//
// Layout differences handled here:
// - GPT-2 stores Conv1D weights as [in, out] (transposed) and fuses Q, K, V into one c_attn.
// - Llama: HF applies RoPE in the rotate-half layout (pair i = dims i and i + head_dim/2) while
//   Strata uses Meta's interleaved pairs (2i, 2i+1): q/k projection rows are permuted per head.
// - BERT: the MLM decoder is tied to the word embeddings (not stored); pooler weights are skipped
//   on import (BertForMaskedLM has none).
#pragma once
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "models/config.hpp"

namespace strata::models::hf {

using TensorMap = std::map<std::string, at::Tensor>;

// Strata parameters (names as in named_parameters()) -> HF tensors.
TensorMap to_hf(const ModelConfig& cfg, const TensorMap& params);
// HF tensors (with or without the "transformer."/"model."/"bert." prefixes) -> Strata parameters.
// Every parameter the config implies must be present; unknown names are errors; buffers and
// tied copies HF sometimes stores are skipped.
TensorMap from_hf(const ModelConfig& cfg, const TensorMap& tensors, const std::string& where);

// config.json text for the architecture (fails for configs HF's class cannot express).
std::string config_json(const ModelConfig& cfg);
// ModelConfig from config.json text; `where` names the file in messages.
ModelConfig config_from_json(const std::string& text, const std::string& where);

// Meta interleaved <-> HF rotate-half row order of a q or k projection ([heads*hd, in] or [heads*hd]).
at::Tensor meta_to_hf_rows(const at::Tensor& w, int64_t heads);
at::Tensor hf_to_meta_rows(const at::Tensor& w, int64_t heads);

}  // namespace strata::models::hf
