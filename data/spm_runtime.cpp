#include "data/spm_runtime.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "core/error.hpp"
#include "data/spm_plugin.h"

#ifndef STRATA_SPM_LIBRARY
#define STRATA_SPM_LIBRARY "libstrata_spm.so"
#endif
#ifndef STRATA_SENTENCEPIECE_LIB
#define STRATA_SENTENCEPIECE_LIB "libsentencepiece.so.0"
#endif
#ifndef STRATA_SENTENCEPIECE_TRAIN_LIB
#define STRATA_SENTENCEPIECE_TRAIN_LIB "libsentencepiece_train.so.0"
#endif

namespace strata::data::spm {
namespace {

struct Api {
  decltype(&strata_spm_load) load;
  decltype(&strata_spm_free) free;
  decltype(&strata_spm_piece_size) piece_size;
  decltype(&strata_spm_find_piece) find_piece;
  decltype(&strata_spm_is_control) is_control;
  decltype(&strata_spm_encode) encode;
  decltype(&strata_spm_decode) decode;
  decltype(&strata_spm_train) train;
  decltype(&strata_spm_free_buf) free_buf;
};

const Api& api() {
  static Api a;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("STRATA_SPM_LIBRARY");
    const std::string path = env && *env ? env : STRATA_SPM_LIBRARY;
    // DEEPBIND: SentencePiece resolves its bundled protobuf to itself; LOCAL: nothing else sees it.
    // Each SentencePiece library is opened that way first (DEEPBIND does not reach dependencies).
    for (const char* dep : {STRATA_SENTENCEPIECE_LIB, STRATA_SENTENCEPIECE_TRAIN_LIB})
      if (!::dlopen(dep, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)) fail("cannot load '{}': {}", dep, ::dlerror());
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) fail("cannot load the SentencePiece plugin '{}': {} (build it, or set STRATA_SPM_LIBRARY)", path, ::dlerror());
    auto sym = [&](const char* name) {
      void* p = ::dlsym(h, name);
      if (!p) fail("SentencePiece plugin '{}' lacks '{}'", path, name);
      return p;
    };
    a.load = reinterpret_cast<decltype(a.load)>(sym("strata_spm_load"));
    a.free = reinterpret_cast<decltype(a.free)>(sym("strata_spm_free"));
    a.piece_size = reinterpret_cast<decltype(a.piece_size)>(sym("strata_spm_piece_size"));
    a.find_piece = reinterpret_cast<decltype(a.find_piece)>(sym("strata_spm_find_piece"));
    a.is_control = reinterpret_cast<decltype(a.is_control)>(sym("strata_spm_is_control"));
    a.encode = reinterpret_cast<decltype(a.encode)>(sym("strata_spm_encode"));
    a.decode = reinterpret_cast<decltype(a.decode)>(sym("strata_spm_decode"));
    a.train = reinterpret_cast<decltype(a.train)>(sym("strata_spm_train"));
    a.free_buf = reinterpret_cast<decltype(a.free_buf)>(sym("strata_spm_free_buf"));
  });
  return a;
}

std::string take_error(char* err) {
  std::string s = err ? err : "unknown error";
  api().free_buf(err);
  return s;
}

}  // namespace

Processor::Processor(const std::string& model, const std::string& origin) : origin_(origin) {
  char* err = nullptr;
  if (api().load(model.data(), model.size(), &sp_, &err))
    fail("tokenizer model '{}' cannot be loaded: {}", origin, take_error(err));
}

Processor::~Processor() {
  if (sp_) api().free(sp_);
}

int Processor::piece_size() const { return api().piece_size(sp_); }
int Processor::find_piece(std::string_view piece) const { return api().find_piece(sp_, piece.data(), piece.size()); }
bool Processor::is_control(int id) const { return api().is_control(sp_, id) != 0; }

std::vector<int32_t> Processor::encode(std::string_view text) const {
  int* ids = nullptr;
  size_t n = 0;
  char* err = nullptr;
  if (api().encode(sp_, text.data(), text.size(), &ids, &n, &err))
    fail("tokenizer '{}': encoding failed: {}", origin_, take_error(err));
  std::vector<int32_t> out(ids, ids + n);
  api().free_buf(ids);
  return out;
}

std::string Processor::decode(const std::vector<int>& ids) const {
  char* text = nullptr;
  size_t n = 0;
  char* err = nullptr;
  if (api().decode(sp_, ids.data(), ids.size(), &text, &n, &err))
    fail("tokenizer '{}': decoding failed: {}", origin_, take_error(err));
  std::string out(text, n);
  api().free_buf(text);
  return out;
}

std::string train(const std::vector<std::pair<std::string, std::string>>& args,
                  const std::function<bool(std::string_view&)>& next) {
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : args) keys.push_back(k.c_str()), values.push_back(v.c_str());
  auto trampoline = [](void* ctx, const char** line, size_t* n) -> int {
    std::string_view s;
    if (!(*static_cast<const std::function<bool(std::string_view&)>*>(ctx))(s)) return 0;
    *line = s.data();
    *n = s.size();
    return 1;
  };
  char* model = nullptr;
  size_t n = 0;
  char* err = nullptr;
  if (api().train(keys.data(), values.data(), keys.size(), trampoline, const_cast<void*>(static_cast<const void*>(&next)),
                  &model, &n, &err))
    fail("prep: SentencePiece training failed: {}", take_error(err));
  std::string out(model, n);
  api().free_buf(model);
  return out;
}

}  // namespace strata::data::spm
