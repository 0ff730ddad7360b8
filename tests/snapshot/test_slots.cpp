// Shared-memory slots: double buffering, torn writes (a slot that was never committed, or whose
// checksum fails, is never loaded and the previous version survives), growth, stale-slot dropping.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <string>

#include "snapshot/slots.hpp"

using namespace strata::snapshot;

namespace {
std::string seg_name(const char* what) { return "/strata-test-" + std::to_string(::getpid()) + "-" + what; }

void put(ShmSlots& s, int64_t step, const std::string& text) {
  std::memcpy(s.begin_write(text.size()), text.data(), text.size());
  s.commit(step);
}

std::string text_of(const std::optional<std::pair<int64_t, std::vector<uint8_t>>>& r) {
  return r ? std::string(r->second.begin(), r->second.end()) : std::string("<none>");
}
}  // namespace

TEST_CASE("a committed snapshot is read back by another mapping; two versions are kept") {
  const auto name = seg_name("basic");
  auto w = ShmSlots::open(name, true);
  REQUIRE_FALSE(w->read().has_value());
  put(*w, 1, "step one");
  put(*w, 2, "step two");
  auto r = ShmSlots::open(name, false);  // a second process would map it the same way
  REQUIRE(r.has_value());
  REQUIRE(text_of(r->read()) == "step two");
  REQUIRE(text_of(r->read(1)) == "step one");
  put(*w, 3, "step three");  // overwrites the older slot (step 1), never the newest
  REQUIRE(text_of(r->read()) == "step three");
  REQUIRE(text_of(r->read(2)) == "step two");
  REQUIRE_FALSE(r->read(1).has_value());
  ShmSlots::unlink(name);
  REQUIRE_FALSE(ShmSlots::open(name, false).has_value());
}

TEST_CASE("a write killed before its commit never exposes a partial snapshot") {
  const auto name = seg_name("torn");
  auto w = ShmSlots::open(name, true);
  put(*w, 5, "complete five");
  uint8_t* p = w->begin_write(64);  // the writer dies half-way: no commit
  std::memset(p, 0xEE, 32);
  auto r = ShmSlots::open(name, false);
  REQUIRE(r->committed().size() == 1);
  REQUIRE(r->read()->first == 5);
  REQUIRE(text_of(r->read()) == "complete five");
  REQUIRE_FALSE(r->read(6).has_value());
  ShmSlots::unlink(name);
}

TEST_CASE("a committed slot whose checksum fails is skipped for the previous version") {
  const auto name = seg_name("crc");
  auto w = ShmSlots::open(name, true);
  put(*w, 7, "seven seven");
  put(*w, 8, "eight eight");
  w->corrupt_for_test(8);
  REQUIRE(w->committed().front().step == 8);  // the header claims it
  REQUIRE_FALSE(w->read(8).has_value());      // but the checksum refuses it
  REQUIRE(w->read()->first == 7);
  REQUIRE(text_of(w->read()) == "seven seven");
  ShmSlots::unlink(name);
}

TEST_CASE("growing the segment keeps working; drop_after uncommits newer slots") {
  const auto name = seg_name("grow");
  auto w = ShmSlots::open(name, true);
  put(*w, 1, "a");
  auto r = ShmSlots::open(name, false);
  std::string big(1 << 20, 'x');
  put(*w, 2, big);
  REQUIRE(text_of(r->read()) == big);  // the reader remaps to the new size
  put(*w, 3, "small again");
  w->drop_after(2);
  REQUIRE(r->read()->first == 2);
  w->drop_after(-1);
  REQUIRE_FALSE(r->read().has_value());
  ShmSlots::unlink(name);
}
