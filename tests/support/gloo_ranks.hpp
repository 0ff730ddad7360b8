// Runs body(rank, group) on `n` threads, each a rank of one Gloo group over an in-memory store, for
// tests of collectives without processes; rethrows the first rank's error after all threads join.
#pragma once
#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "parallel/backends.hpp"

namespace strata::testing {

inline void run_gloo_ranks(int n, const std::function<void(int, parallel::ProcessGroup&)>& body,
                           std::chrono::milliseconds timeout = std::chrono::seconds(20),
                           const std::string& name = "test") {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        at::set_num_threads(1);
        auto pg = parallel::wrap_c10d(parallel::make_gloo_backend(store, r, n, timeout), name, "gloo", r, timeout);
        body(r, *pg);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace strata::testing
