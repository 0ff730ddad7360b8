#include "checkpoint/inspect.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "checkpoint/sliced.hpp"
#include "core/error.hpp"

namespace strata::checkpoint {

std::string describe_checkpoint(const std::filesystem::path& dir) {
  CheckpointReader r(dir);
  uint64_t bytes = 0;
  size_t slices = 0;
  for (const auto& [_, t] : r.tensors())
    for (const auto& s : t.slices) bytes += s.nbytes, ++slices;
  std::string out = fmt::format("checkpoint {}\nstep {} | format version {} ({}) | written by {} rank(s) | {} tensors, {} slices, "
                                "{:.3f} MB\n",
                                dir.string(), r.step(), r.version(), r.version() == 1 ? "whole tensors" : "sliced", r.world(),
                                r.tensors().size(), slices, bytes / 1e6);
  out += "meta:\n";
  for (const auto& [k, v] : r.meta()) out += fmt::format("  {} = {}\n", k, v);
  out += "tensors:\n";
  for (const auto& [name, t] : r.tensors()) {
    out += fmt::format("  {} {} [{}] {} slice(s)\n", name, t.dtype, fmt::join(t.shape, ", "), t.slices.size());
    for (size_t i = 0; i < t.slices.size(); ++i) {
      const auto& s = t.slices[i];
      out += fmt::format("    [{}] {} {} @ {} +{} bytes, rank {}, crc32c {:08x}{}\n", i, s.region.str(), s.file, s.offset, s.nbytes,
                         s.rank, s.crc32c, s.chunk_bytes ? fmt::format(", {} chunks of {} bytes", s.chunk_crc32c.size(), s.chunk_bytes) : "");
    }
  }
  return out;
}

VerifyReport verify_checkpoint(const std::filesystem::path& dir) {
  VerifyReport rep;
  try {
    CheckpointReader r(dir);
    for (const auto& [name, t] : r.tensors()) {
      ++rep.tensors;
      for (size_t i = 0; i < t.slices.size(); ++i) {
        ++rep.slices;
        rep.bytes += t.slices[i].nbytes;
        if (auto err = r.check_slice(name, i); !err.empty()) rep.problems.push_back(err);
      }
    }
  } catch (const Error& e) {
    rep.problems.push_back(e.what());
  }
  return rep;
}

}  // namespace strata::checkpoint
