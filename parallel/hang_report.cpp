#include "parallel/hang_report.hpp"

#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace strata::parallel {

std::chrono::milliseconds hang_report_grace(std::chrono::milliseconds timeout) {
  return std::min(timeout / 2, std::chrono::milliseconds(10000));
}

std::string report_hang_through_store(c10d::Store& store, const std::string& op, int64_t seq, int64_t rank,
                                      int64_t size, std::chrono::milliseconds timeout) {
  const auto grace = hang_report_grace(timeout);
  auto key = [&](int64_t r) { return fmt::format("hang/{}/{}", seq, r); };
  std::vector<int64_t> reached, missing;
  try {
    store.setTimeout(grace);  // a dead store server must not add the store's own (long) timeout
    const std::string mine = op;
    store.set(key(rank), std::vector<uint8_t>(mine.begin(), mine.end()));
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (true) {
      reached.clear(), missing.clear();
      for (int64_t r = 0; r < size; ++r) (store.check({key(r)}) ? reached : missing).push_back(r);
      if (missing.empty() || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  } catch (const std::exception& e) {
    return fmt::format("(which ranks reached {} #{} is unknown: the rendezvous store did not answer: {})", op, seq,
                       std::string(e.what()).substr(0, 200));
  }
  return fmt::format("ranks that reached {} #{} of this group: [{}]; not reached within {} s more: [{}]", op, seq,
                     fmt::join(reached, ", "), grace.count() / 1000.0, fmt::join(missing, ", "));
}

}  // namespace strata::parallel
