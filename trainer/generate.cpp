#include "trainer/generate.hpp"

#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

#include "checkpoint/checkpoint.hpp"
#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/tokenizer.hpp"
#include "data/training_data.hpp"
#include "models/language_model.hpp"
#include "trainer/recipe.hpp"
#include "trainer/trainer.hpp"

namespace strata::trainer {
namespace fs = std::filesystem;

std::string generate_text(const GenerateOptions& opt) {
  auto latest = checkpoint::latest_checkpoint(fs::path(opt.run_dir) / "checkpoints");
  if (!latest) fail("generate: no checkpoint under '{}/checkpoints' (has the run saved one?)", opt.run_dir);
  auto st = checkpoint::load_checkpoint(*latest);
  RunConfig cfg = load_recipe_text(st.config_yaml, latest->string() + "/manifest.pb:config");
  auto device = setup_device(cfg.train);
  auto tok = data::load_dataset_tokenizer(data::dataset_paths(cfg.data).front());  // all datasets share it

  auto model = models::make_model(cfg.model);
  {
    torch::NoGradGuard no_grad;
    for (auto& kv : model->named_parameters()) {
      auto it = st.tensors.find("model." + kv.key());
      if (it == st.tensors.end()) fail("generate: checkpoint {} lacks 'model.{}'", latest->string(), kv.key());
      kv.value().copy_(it->second);
    }
  }
  model->to(device);
  model->eval();
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
  std::vector<int32_t> ids = tok->encode(opt.prompt);
  if (ids.empty()) ids.push_back(tok->specials().eos);  // start of a fresh document
  const size_t prompt_len = ids.size();
  for (int64_t n = 0; n < opt.max_new_tokens; ++n) {
    int64_t ctx = std::min<int64_t>(static_cast<int64_t>(ids.size()), cfg.model.max_seq_len);
    std::vector<int64_t> window(ids.end() - ctx, ids.end());
    auto input = at::tensor(window, at::kLong).view({1, ctx}).to(device);
    auto logits = model->forward(input).select(1, ctx - 1).squeeze(0).to(at::kCPU).to(at::kFloat);
    logits = logits.narrow(0, 0, tok->vocab_size());  // never sample padded vocabulary rows
    int32_t next;
    if (opt.temperature <= 0) {
      next = static_cast<int32_t>(logits.argmax().item<int64_t>());
    } else {
      logits = logits / opt.temperature;
      if (opt.top_k > 0 && opt.top_k < logits.size(0)) {
        auto kth = std::get<0>(logits.topk(opt.top_k)).min();
        logits = logits.masked_fill(logits < kth, -INFINITY);
      }
      auto probs = at::softmax(logits, 0);
      next = static_cast<int32_t>(at::multinomial(probs, 1, false, gen).item<int64_t>());
    }
    if (next == tok->specials().eos) break;
    ids.push_back(next);
  }
  std::vector<int32_t> out(ids.begin() + (ids.size() >= prompt_len ? 0 : 0), ids.end());
  if (opt.prompt.empty()) out.erase(out.begin());
  return tok->decode(out);
}

}  // namespace strata::trainer
