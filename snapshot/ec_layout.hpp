// How Reed-Solomon stripes lie across a group of n = k + m nodes (rotating, RAID-6 style):
// every node's snapshot bytes D_i, zero-padded to a common size S (a multiple of 64 k), are cut into
// k blocks of S / k. Stripe s (s = 0..n-1) takes data fragment j from node (s + j) mod n, its block j,
// and stores parity fragment p on node (s + k + p) mod n. Every node holds k data blocks and m parity
// blocks (overhead m / k), no stripe has two fragments on one node, so any m lost nodes leave every
// stripe k fragments and are rebuilt; m + 1 lost nodes are reported as unrecoverable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "snapshot/erasure.hpp"

namespace strata::snapshot {

struct StripeLayout {
  int k = 0, m = 0;
  int n() const { return k + m; }
  int stripe_of(int node, int block) const { return ((node - block) % n() + n()) % n(); }
  int data_node(int stripe, int j) const { return (stripe + j) % n(); }
  int parity_node(int stripe, int p) const { return (stripe + k + p) % n(); }
  // The stripe whose parity fragment p node `node` stores.
  int parity_stripe(int node, int p) const { return ((node - k - p) % n() + n()) % n(); }
  // The common padded size S for nodes whose largest snapshot has max_bytes bytes.
  size_t padded_size(size_t max_bytes) const;
};

// Node-local fragment readers: copy `block` of node `node`'s (padded) data, or its parity block p,
// into out (S / k bytes); return false when that node or block is unavailable.
using FetchBlock = std::function<bool(int node, int block, uint8_t* out)>;

// Node `node`'s m parity blocks (m * S / k bytes into parity_out), fetching the stripes' data blocks.
void encode_node_parity(const StripeLayout& l, const ReedSolomon& rs, size_t S, int node, const FetchBlock& data,
                        uint8_t* parity_out);
// Rebuilds lost node `node`'s padded data (S bytes) from the other nodes' data and parity blocks;
// fails with "unrecoverable" when a stripe has fewer than k surviving fragments.
std::vector<uint8_t> rebuild_node_data(const StripeLayout& l, const ReedSolomon& rs, size_t S, int node,
                                       const FetchBlock& data, const FetchBlock& parity);

// A node's snapshot: its local ranks' serialized states, packed with their sizes.
std::vector<uint8_t> pack_node(const std::vector<std::vector<uint8_t>>& ranks);
std::vector<std::vector<uint8_t>> unpack_node(const uint8_t* p, size_t n, const std::string& where);

}  // namespace strata::snapshot
