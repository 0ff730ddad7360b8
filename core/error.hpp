// Strata's one error type: a message a user can act on (what was wrong, and where).
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "core/format.hpp"

namespace strata {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace strata
