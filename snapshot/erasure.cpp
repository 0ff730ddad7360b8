#include "snapshot/erasure.hpp"

#include <isa-l/erasure_code.h>

#include <algorithm>
#include <set>

#include "core/error.hpp"

namespace strata::snapshot {

ReedSolomon::ReedSolomon(int k, int m) : k_(k), m_(m) {
  if (k < 1 || m < 1 || k + m > 255)
    fail("erasure coding: RS(k = {}, m = {}) needs k >= 1, m >= 1 and k + m <= 255 (snapshot.ec_k / ec_m)", k, m);
  matrix_.resize(static_cast<size_t>(k + m) * k);
  gf_gen_cauchy1_matrix(matrix_.data(), k + m, k);
  tables_.resize(static_cast<size_t>(32) * k * m);
  ec_init_tables(k, m, matrix_.data() + static_cast<size_t>(k) * k, tables_.data());
}

void ReedSolomon::encode(size_t len, const std::vector<const uint8_t*>& data, const std::vector<uint8_t*>& parity) const {
  if (data.size() != static_cast<size_t>(k_) || parity.size() != static_cast<size_t>(m_))
    fail("erasure coding: encode got {} data and {} parity fragments, RS({}, {}) needs {} and {}", data.size(),
         parity.size(), k_, m_, k_, m_);
  if (len > static_cast<size_t>(INT32_MAX)) fail("erasure coding: fragment of {} bytes exceeds 2 GiB", len);
  if (len == 0) return;
  ec_encode_data(static_cast<int>(len), k_, m_, const_cast<uint8_t*>(tables_.data()),
                 const_cast<uint8_t**>(data.data()), const_cast<uint8_t**>(parity.data()));
}

void ReedSolomon::decode(size_t len, const std::vector<int>& have, const std::vector<const uint8_t*>& frags,
                         const std::vector<int>& want, const std::vector<uint8_t*>& out) const {
  std::set<int> distinct(have.begin(), have.end());
  if (have.size() != frags.size() || want.size() != out.size())
    fail("erasure coding: decode got mismatched fragment lists ({} ids, {} buffers; {} wanted, {} outputs)",
         have.size(), frags.size(), want.size(), out.size());
  if (static_cast<int>(distinct.size()) < k_ || static_cast<int>(have.size()) < k_)
    fail("erasure coding: unrecoverable: {} distinct fragments survive, RS({}, {}) needs {}", distinct.size(), k_, m_, k_);
  for (int id : have)
    if (id < 0 || id >= k_ + m_) fail("erasure coding: fragment id {} is outside RS({}, {})", id, k_, m_);
  for (int id : want)
    if (id < 0 || id >= k_) fail("erasure coding: can only rebuild data fragments 0..{}, not {}", k_ - 1, id);
  if (len == 0) return;
  // The first k given fragments: rows of the encode matrix; invert and take the wanted rows.
  std::vector<uint8_t> sub(static_cast<size_t>(k_) * k_), inv(sub.size());
  for (int r = 0; r < k_; ++r)
    std::copy_n(matrix_.data() + static_cast<size_t>(have[r]) * k_, k_, sub.data() + static_cast<size_t>(r) * k_);
  if (gf_invert_matrix(sub.data(), inv.data(), k_) != 0)
    fail("erasure coding: the surviving fragments' matrix is singular (duplicate fragment ids?)");
  std::vector<uint8_t> rows(static_cast<size_t>(want.size()) * k_);
  for (size_t w = 0; w < want.size(); ++w)
    std::copy_n(inv.data() + static_cast<size_t>(want[w]) * k_, k_, rows.data() + w * k_);
  std::vector<uint8_t> tables(static_cast<size_t>(32) * k_ * want.size());
  ec_init_tables(k_, static_cast<int>(want.size()), rows.data(), tables.data());
  std::vector<const uint8_t*> src(frags.begin(), frags.begin() + k_);
  ec_encode_data(static_cast<int>(len), k_, static_cast<int>(want.size()), tables.data(), const_cast<uint8_t**>(src.data()),
                 const_cast<uint8_t**>(out.data()));
}

}  // namespace strata::snapshot
