// SentencePiece through the plugin libstrata_spm.so (data/spm_plugin.h says why it is a plugin),
// loaded on first use with RTLD_LOCAL | RTLD_DEEPBIND. STRATA_SPM_LIBRARY overrides its path.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct strata_spm;

namespace strata::data::spm {

class Processor {
 public:
  // model: the bytes of a .model file; origin names it in errors.
  Processor(const std::string& model, const std::string& origin);
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  int piece_size() const;
  int find_piece(std::string_view piece) const;  // -1 if absent
  bool is_control(int id) const;
  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int>& ids) const;

 private:
  strata_spm* sp_ = nullptr;
  std::string origin_;
};

// Trains a model from key/value options and the lines `next` yields (false when done); returns
// the serialized model.
std::string train(const std::vector<std::pair<std::string, std::string>>& args,
                  const std::function<bool(std::string_view&)>& next);

}  // namespace strata::data::spm
