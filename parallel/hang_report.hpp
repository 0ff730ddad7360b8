// Diagnosing a collective that timed out: each rank that gives up on collective number `seq` of a
// group records its arrival in the group's rendezvous store, waits a short grace period for the
// other ranks that time out at the same operation, and reports who reached it and who did not
// (those are the ranks to look at: dead, stopped, or stuck in another operation). Nothing is
// written on the fast path; this runs only after a timeout.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include <torch/csrc/distributed/c10d/Store.hpp>

namespace strata::parallel {

// Returns e.g. "ranks that reached all_reduce #57 of this group: [0, 2]; not reached: [1]". A rank
// that timed out at a later collective of the group counts as having reached #57 (a peer stopped in
// the middle of #57 can let it finish) and is named as past it. Never throws: a store that cannot be
// reached is reported in the text.
std::string report_hang_through_store(c10d::Store& store, const std::string& op, int64_t seq, int64_t rank,
                                      int64_t size, std::chrono::milliseconds timeout);

// The grace period: long enough for ranks that entered the operation a little later to time out
// too, short next to the timeout (half of it, at most 10 s).
std::chrono::milliseconds hang_report_grace(std::chrono::milliseconds timeout);

}  // namespace strata::parallel
