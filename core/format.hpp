// fmt formatters for the LibTorch types that appear in Strata's messages.
#pragma once
#include <c10/util/ArrayRef.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

template <>
struct fmt::formatter<c10::IntArrayRef> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(c10::IntArrayRef a, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "[{}]", fmt::join(a.begin(), a.end(), ", "));
  }
};
