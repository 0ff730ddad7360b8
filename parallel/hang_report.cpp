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
  // The collective a rank timed out at. A rank stopped in the middle of a collective can let a peer
  // finish it and time out at the next one, so a rank stuck at a later number has reached this one.
  auto at_key = [&](int64_t r) { return fmt::format("hang/at/{}", r); };
  auto bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  std::vector<int64_t> reached, missing, past;
  try {
    store.setTimeout(grace);  // a dead store server must not add the store's own (long) timeout
    store.set(key(rank), bytes(op));
    store.set(at_key(rank), bytes(std::to_string(seq)));
    auto stuck_later = [&](int64_t r) {
      if (!store.check({at_key(r)})) return false;
      const auto v = store.get(at_key(r));
      return std::stoll(std::string(v.begin(), v.end())) > seq;
    };
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (true) {
      reached.clear(), missing.clear(), past.clear();
      for (int64_t r = 0; r < size; ++r) {
        if (store.check({key(r)})) {
          reached.push_back(r);
        } else if (stuck_later(r)) {
          reached.push_back(r);
          past.push_back(r);
        } else {
          missing.push_back(r);
        }
      }
      if (missing.empty() || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  } catch (const std::exception& e) {
    return fmt::format("(which ranks reached {} #{} is unknown: the rendezvous store did not answer: {})", op, seq,
                       std::string(e.what()).substr(0, 200));
  }
  return fmt::format("ranks that reached {} #{} of this group: [{}]; not reached within {} s more: [{}]{}", op, seq,
                     fmt::join(reached, ", "), grace.count() / 1000.0, fmt::join(missing, ", "),
                     past.empty() ? "" : fmt::format(" (already past it, stuck at a later collective: [{}])", fmt::join(past, ", ")));
}

}  // namespace strata::parallel
