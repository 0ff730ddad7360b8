// libstrata_spm.so: SentencePiece behind the C interface of data/spm_plugin.h (see there why).
#include "data/spm_plugin.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

struct strata_spm {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

int failed(const sentencepiece::util::Status& st, char** err) {
  if (st.ok()) return 0;
  *err = dup(st.ToString());
  return 1;
}

class Lines final : public sentencepiece::SentenceIterator {
 public:
  Lines(strata_spm_next_line next, void* ctx) : next_(next), ctx_(ctx) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    const char* p = nullptr;
    size_t n = 0;
    if (next_(ctx_, &p, &n)) line_.assign(p, n);
    else done_ = true;
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  strata_spm_next_line next_;
  void* ctx_;
  std::string line_;
  bool done_ = false;
};

}  // namespace

extern "C" {

int strata_spm_load(const char* model, size_t n, strata_spm** out, char** err) {
  auto* s = new strata_spm;
  if (failed(s->sp.LoadFromSerializedProto(std::string_view(model, n)), err)) {
    delete s;
    return 1;
  }
  *out = s;
  return 0;
}

void strata_spm_free(strata_spm* sp) { delete sp; }
int strata_spm_piece_size(const strata_spm* sp) { return sp->sp.GetPieceSize(); }

int strata_spm_find_piece(const strata_spm* sp, const char* piece, size_t n) {
  std::string_view p(piece, n);
  int id = sp->sp.PieceToId(p);
  return id >= 0 && id < sp->sp.GetPieceSize() && sp->sp.IdToPiece(id) == p ? id : -1;
}

int strata_spm_is_control(const strata_spm* sp, int id) { return sp->sp.IsControl(id) ? 1 : 0; }

int strata_spm_encode(const strata_spm* sp, const char* text, size_t n, int** ids, size_t* count, char** err) {
  std::vector<int> v;
  if (failed(sp->sp.Encode(std::string_view(text, n), &v), err)) return 1;
  *ids = static_cast<int*>(std::malloc(std::max<size_t>(v.size(), 1) * sizeof(int)));
  if (!v.empty()) std::memcpy(*ids, v.data(), v.size() * sizeof(int));
  *count = v.size();
  return 0;
}

int strata_spm_decode(const strata_spm* sp, const int* ids, size_t count, char** text, size_t* n, char** err) {
  std::string out;
  if (failed(sp->sp.Decode(std::vector<int>(ids, ids + count), &out), err)) return 1;
  *text = dup(out);
  *n = out.size();
  return 0;
}

int strata_spm_train(const char* const* keys, const char* const* values, size_t n_args, strata_spm_next_line next,
                     void* ctx, char** model, size_t* model_n, char** err) {
  std::unordered_map<std::string, std::string> args;
  for (size_t i = 0; i < n_args; ++i) args[keys[i]] = values[i];
  Lines lines(next, ctx);
  std::string out;
  if (failed(sentencepiece::SentencePieceTrainer::Train(args, &lines, &out), err)) return 1;
  *model = static_cast<char*>(std::malloc(std::max<size_t>(out.size(), 1)));
  std::memcpy(*model, out.data(), out.size());
  *model_n = out.size();
  return 0;
}

void strata_spm_free_buf(void* p) { std::free(p); }

}  // extern "C"
