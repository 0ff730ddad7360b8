// Reed-Solomon through ISA-L and the cross-node stripe layout: every erasure pattern of up to m
// fragments / nodes is rebuilt bitwise; m + 1 lost nodes are reported as unrecoverable.
#include <catch2/catch.hpp>

#include <random>
#include <set>

#include "core/error.hpp"
#include "snapshot/ec_layout.hpp"
#include "snapshot/erasure.hpp"

using namespace strata::snapshot;

namespace {

std::vector<uint8_t> random_bytes(std::mt19937_64& g, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(g());
  return v;
}

// Every subset of {0..n-1} with exactly `size` elements.
std::vector<std::vector<int>> subsets(int n, int size) {
  std::vector<std::vector<int>> out;
  for (uint32_t mask = 0; mask < (1u << n); ++mask)
    if (__builtin_popcount(mask) == size) {
      std::vector<int> s;
      for (int i = 0; i < n; ++i)
        if (mask & (1u << i)) s.push_back(i);
      out.push_back(s);
    }
  return out;
}

}  // namespace

TEST_CASE("RS(k, m) decodes every erasure pattern of up to m fragments") {
  std::mt19937_64 g(11);
  for (int k = 3; k <= 6; ++k)
    for (int m = 1; m <= 3; ++m) {
      ReedSolomon rs(k, m);
      const size_t len = 64 * k + 37;  // not a multiple of anything ISA-L prefers
      std::vector<std::vector<uint8_t>> frags;
      for (int j = 0; j < k; ++j) frags.push_back(random_bytes(g, len));
      for (int p = 0; p < m; ++p) frags.emplace_back(len);
      std::vector<const uint8_t*> data;
      std::vector<uint8_t*> parity;
      for (int j = 0; j < k; ++j) data.push_back(frags[j].data());
      for (int p = 0; p < m; ++p) parity.push_back(frags[k + p].data());
      rs.encode(len, data, parity);
      for (int lost = 1; lost <= m; ++lost)
        for (const auto& erased : subsets(k + m, lost)) {
          std::set<int> gone(erased.begin(), erased.end());
          std::vector<int> have, want;
          std::vector<const uint8_t*> ptrs;
          for (int f = 0; f < k + m; ++f)
            if (!gone.count(f)) have.push_back(f), ptrs.push_back(frags[f].data());
          for (int f : erased)
            if (f < k) want.push_back(f);
          std::vector<std::vector<uint8_t>> out(want.size(), std::vector<uint8_t>(len));
          std::vector<uint8_t*> outp;
          for (auto& o : out) outp.push_back(o.data());
          rs.decode(len, have, ptrs, want, outp);
          for (size_t w = 0; w < want.size(); ++w) REQUIRE(out[w] == frags[want[w]]);
        }
      // Fewer than k fragments: an error, never garbage.
      std::vector<int> have;
      std::vector<const uint8_t*> ptrs;
      for (int f = m + 1; f < k + m; ++f) have.push_back(f), ptrs.push_back(frags[f].data());
      std::vector<uint8_t> out(len);
      REQUIRE_THROWS_WITH(rs.decode(len, have, ptrs, {0}, {out.data()}), Catch::Contains("unrecoverable"));
    }
}

TEST_CASE("nodes of unequal sizes are rebuilt from the others' data and parity, up to m lost; m + 1 is unrecoverable") {
  std::mt19937_64 g(5);
  for (int k = 3; k <= 6; ++k)
    for (int m = 1; m <= 2; ++m) {
      StripeLayout l{k, m};
      ReedSolomon rs(k, m);
      const int n = l.n();
      std::vector<std::vector<uint8_t>> nodes;
      size_t max_bytes = 0;
      for (int i = 0; i < n; ++i) {
        nodes.push_back(random_bytes(g, 200 + 97 * i + g() % 300));
        max_bytes = std::max(max_bytes, nodes.back().size());
      }
      const size_t S = l.padded_size(max_bytes), B = S / k;
      REQUIRE(S % (64 * k) == 0);
      std::set<int> alive;
      auto data = [&](int i, int block, uint8_t* out) {
        if (!alive.count(i)) return false;
        std::fill(out, out + B, 0);
        const size_t off = B * block;
        if (off < nodes[i].size()) std::copy_n(nodes[i].data() + off, std::min(B, nodes[i].size() - off), out);
        return true;
      };
      std::vector<std::vector<uint8_t>> parity(n, std::vector<uint8_t>(m * B));
      for (int i = 0; i < n; ++i) alive.insert(i);
      for (int i = 0; i < n; ++i) encode_node_parity(l, rs, S, i, data, parity[i].data());
      auto par = [&](int i, int p, uint8_t* out) {
        if (!alive.count(i)) return false;
        std::copy_n(parity[i].data() + B * p, B, out);
        return true;
      };
      for (int lost = 1; lost <= m + 1; ++lost)
        for (const auto& erased : subsets(n, lost)) {
          alive.clear();
          for (int i = 0; i < n; ++i) alive.insert(i);
          for (int f : erased) alive.erase(f);
          for (int f : erased) {
            if (lost <= m) {
              auto back = rebuild_node_data(l, rs, S, f, data, par);
              REQUIRE(back.size() == S);
              REQUIRE(std::equal(nodes[f].begin(), nodes[f].end(), back.begin()));
              REQUIRE(std::all_of(back.begin() + nodes[f].size(), back.end(), [](uint8_t b) { return b == 0; }));
            } else {
              REQUIRE_THROWS_WITH(rebuild_node_data(l, rs, S, f, data, par), Catch::Contains("unrecoverable"));
            }
          }
        }
    }
}

TEST_CASE("the stripe layout puts no two fragments of a stripe on one node") {
  for (int k = 1; k <= 6; ++k)
    for (int m = 1; m <= 3; ++m) {
      StripeLayout l{k, m};
      for (int s = 0; s < l.n(); ++s) {
        std::set<int> holders;
        for (int j = 0; j < k; ++j) {
          holders.insert(l.data_node(s, j));
          REQUIRE(l.stripe_of(l.data_node(s, j), j) == s);
        }
        for (int p = 0; p < m; ++p) {
          holders.insert(l.parity_node(s, p));
          REQUIRE(l.parity_stripe(l.parity_node(s, p), p) == s);
        }
        REQUIRE(static_cast<int>(holders.size()) == l.n());
      }
    }
}

TEST_CASE("packed node snapshots round-trip and reject bad sizes") {
  std::vector<std::vector<uint8_t>> ranks = {{1, 2, 3}, {}, {9, 8, 7, 6, 5}};
  auto packed = pack_node(ranks);
  REQUIRE(unpack_node(packed.data(), packed.size(), "test") == ranks);
  packed.resize(packed.size() - 2);
  REQUIRE_THROWS_WITH(unpack_node(packed.data(), packed.size(), "test"), Catch::Contains("rank 2 claims 5 bytes"));
}
