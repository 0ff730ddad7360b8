// Reed-Solomon RS(k, m) over GF(2^8) with Intel ISA-L: k equal-length data fragments give m parity
// fragments; any k of the k + m fragments give back the data. The encode matrix is ISA-L's Cauchy
// matrix (every k x k submatrix is invertible, so every erasure pattern of up to m fragments decodes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata::snapshot {

class ReedSolomon {
 public:
  ReedSolomon(int k, int m);  // 1 <= k, 1 <= m, k + m <= 255
  int k() const { return k_; }
  int m() const { return m_; }
  // parity[p] (len bytes each) from data[j] (len bytes each).
  void encode(size_t len, const std::vector<const uint8_t*>& data, const std::vector<uint8_t*>& parity) const;
  // Fragments are numbered 0..k-1 (data) and k..k+m-1 (parity). `have` lists k available fragment
  // ids with their bytes in `frags`; the data fragments in `want` are written to `out`. Fails
  // (strata::fail) when fewer than k distinct fragments are given.
  void decode(size_t len, const std::vector<int>& have, const std::vector<const uint8_t*>& frags,
              const std::vector<int>& want, const std::vector<uint8_t*>& out) const;

 private:
  int k_, m_;
  std::vector<uint8_t> matrix_;  // (k + m) x k, identity on top
  std::vector<uint8_t> tables_;  // ec_init_tables of the parity rows
};

}  // namespace strata::snapshot
