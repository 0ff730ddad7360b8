#include "snapshot/ec_layout.hpp"

#include <cstring>

#include "core/error.hpp"

namespace strata::snapshot {

namespace {
constexpr uint64_t kNodeMagic = 0x31444f4e50414e53ULL;  // "SNAPNOD1"
}

size_t StripeLayout::padded_size(size_t max_bytes) const {
  const size_t unit = static_cast<size_t>(64) * k;
  return std::max<size_t>(unit, (max_bytes + unit - 1) / unit * unit);
}

void encode_node_parity(const StripeLayout& l, const ReedSolomon& rs, size_t S, int node, const FetchBlock& data,
                        uint8_t* parity_out) {
  const size_t B = S / l.k;
  std::vector<uint8_t> buf(B * l.k);
  std::vector<const uint8_t*> in(l.k);
  std::vector<uint8_t> all_parity(B * l.m);
  std::vector<uint8_t*> out(l.m);
  for (int p = 0; p < l.m; ++p) out[p] = all_parity.data() + B * p;
  for (int p = 0; p < l.m; ++p) {
    const int s = l.parity_stripe(node, p);
    for (int j = 0; j < l.k; ++j) {
      if (!data(l.data_node(s, j), j, buf.data() + B * j))
        fail("erasure coding: parity of stripe {} needs block {} of node {}, which is unavailable", s, j, l.data_node(s, j));
      in[j] = buf.data() + B * j;
    }
    rs.encode(B, in, out);  // all m parity fragments of stripe s; this node keeps fragment p
    std::memcpy(parity_out + B * p, out[p], B);
  }
}

std::vector<uint8_t> rebuild_node_data(const StripeLayout& l, const ReedSolomon& rs, size_t S, int node,
                                       const FetchBlock& data, const FetchBlock& parity) {
  const size_t B = S / l.k;
  std::vector<uint8_t> result(S), frags(B * l.k);
  for (int j = 0; j < l.k; ++j) {
    const int s = l.stripe_of(node, j);
    std::vector<int> have;
    std::vector<const uint8_t*> ptrs;
    for (int f = 0; f < l.n() && static_cast<int>(have.size()) < l.k; ++f) {
      uint8_t* dst = frags.data() + B * have.size();
      const bool is_data = f < l.k;
      const int holder = is_data ? l.data_node(s, f) : l.parity_node(s, f - l.k);
      if (holder == node) continue;
      if (is_data ? data(holder, f, dst) : parity(holder, f - l.k, dst)) {
        have.push_back(f);
        ptrs.push_back(dst);
      }
    }
    if (static_cast<int>(have.size()) < l.k)
      fail("erasure coding: node {} is unrecoverable: stripe {} has {} surviving fragments, RS({}, {}) needs {}", node, s,
           have.size(), l.k, l.m, l.k);
    rs.decode(B, have, ptrs, {j}, {result.data() + B * j});
  }
  return result;
}

std::vector<uint8_t> pack_node(const std::vector<std::vector<uint8_t>>& ranks) {
  size_t total = 16 + 8 * ranks.size();
  for (const auto& r : ranks) total += r.size();
  std::vector<uint8_t> out(total);
  uint8_t* p = out.data();
  const uint64_t magic = kNodeMagic, count = ranks.size();
  std::memcpy(p, &magic, 8), std::memcpy(p + 8, &count, 8);
  p += 16;
  for (const auto& r : ranks) {
    const uint64_t n = r.size();
    std::memcpy(p, &n, 8);
    p += 8;
  }
  for (const auto& r : ranks) {
    if (!r.empty()) std::memcpy(p, r.data(), r.size());
    p += r.size();
  }
  return out;
}

std::vector<std::vector<uint8_t>> unpack_node(const uint8_t* p, size_t n, const std::string& where) {
  uint64_t magic = 0, count = 0;
  if (n < 16) fail("snapshot {}: node data of {} bytes is shorter than its header", where, n);
  std::memcpy(&magic, p, 8), std::memcpy(&count, p + 8, 8);
  if (magic != kNodeMagic) fail("snapshot {}: node data has a bad magic number (not a packed node snapshot)", where);
  if (count > 4096 || 16 + 8 * count > n) fail("snapshot {}: node data claims {} ranks, which do not fit {} bytes", where, count, n);
  std::vector<uint64_t> sizes(count);
  std::memcpy(sizes.data(), p + 16, 8 * count);
  size_t off = 16 + 8 * count;
  std::vector<std::vector<uint8_t>> out;
  for (uint64_t r = 0; r < count; ++r) {
    if (sizes[r] > n - off) fail("snapshot {}: rank {} claims {} bytes, only {} remain", where, r, sizes[r], n - off);
    out.emplace_back(p + off, p + off + sizes[r]);
    off += sizes[r];
  }
  return out;
}

}  // namespace strata::snapshot
