// The BERT MLM collator: rates over a million tokens, specials never chosen, determinism.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "data/mlm.hpp"

using namespace strata;
using namespace strata::data;
using Catch::Matchers::Contains;

TEST_CASE("MLM: 15% of non-special positions, 80/10/10, specials never chosen", "[data][mlm]") {
  ByteTokenizer tok;
  const auto& sp = tok.specials();
  const int64_t B = 1000, T = 1000;  // 1e6 tokens
  at::manual_seed(3);
  auto ids = at::randint(0, 256, {B, T}, at::kLong);
  // Sprinkle every kind of special token (about 6% of positions).
  auto which = at::randint(0, 100, {B, T}, at::kLong);
  for (int32_t s : sp.ids()) ids.masked_fill_(which == (s - 256), s);
  std::vector<uint64_t> idx(B);
  for (int64_t b = 0; b < B; ++b) idx[b] = 5000 + b;
  MlmCollator mlm(tok, {.seed = 42});
  auto out = mlm(ids, idx);

  auto is_special = at::zeros({B, T}, at::kBool);
  for (int32_t s : sp.ids()) is_special |= ids == s;
  auto chosen = out.labels != MlmCollator::kIgnore;
  const double eligible = (~is_special).sum().item<double>();
  const double n_chosen = chosen.sum().item<double>();
  CHECK(eligible > 0.9e6);
  CHECK(std::abs(n_chosen / eligible - 0.15) < 0.001);
  REQUIRE((chosen & is_special).sum().item<int64_t>() == 0);         // specials never chosen
  REQUIRE(at::equal(out.input_ids.masked_select(is_special), ids.masked_select(is_special)));
  REQUIRE(at::equal(out.labels.masked_select(chosen), ids.masked_select(chosen)));  // labels = original tokens
  REQUIRE(at::equal(out.input_ids.masked_select(~chosen), ids.masked_select(~chosen)));  // others untouched

  auto masked = chosen & (out.input_ids == sp.mask);
  auto same = chosen & (out.input_ids == ids);
  auto random = chosen & (out.input_ids != ids) & (out.input_ids != sp.mask);
  CHECK(std::abs(masked.sum().item<double>() / n_chosen - 0.8) < 0.005);
  // A random replacement equals the original with probability 1/256: "unchanged" gains that share.
  CHECK(std::abs(random.sum().item<double>() / n_chosen - 0.1 * 255 / 256) < 0.005);
  CHECK(std::abs(same.sum().item<double>() / n_chosen - (0.1 + 0.1 / 256)) < 0.005);
  // Random replacements are ordinary tokens.
  REQUIRE((out.input_ids.masked_select(random) >= 256).sum().item<int64_t>() == 0);
}

TEST_CASE("MLM masks are a pure function of (seed, sample index)", "[data][mlm]") {
  ByteTokenizer tok;
  auto ids = at::randint(0, 256, {4, 128}, at::kLong);
  MlmCollator a(tok, {.seed = 1}), b(tok, {.seed = 2});
  auto x = a(ids, {10, 11, 12, 13});
  auto y = a(ids, {10, 11, 12, 13});
  REQUIRE(at::equal(x.input_ids, y.input_ids));
  REQUIRE(at::equal(x.labels, y.labels));
  // The same sample at another batch position masks the same way.
  auto z = a(ids.narrow(0, 2, 1), {12});
  REQUIRE(at::equal(z.labels[0], x.labels[2]));
  REQUIRE_FALSE(at::equal(a(ids, {20, 21, 22, 23}).labels, x.labels));
  REQUIRE_FALSE(at::equal(b(ids, {10, 11, 12, 13}).labels, x.labels));
  REQUIRE_THROWS_WITH(a(ids, {1, 2}), Contains("2 sample indices for a batch of 4"));
  SpecialTokens none;
  none.eos = 0;
  REQUIRE_THROWS_WITH(MlmCollator(none, 10), Contains("no MASK token"));
}
