#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/prep.hpp"
#include "data/shard.hpp"
#include "data/tokenizer.hpp"
#include "tests/support/corpus.hpp"
#include "tests/support/temp_dir.hpp"

using namespace strata;
using namespace strata::data;
using Catch::Matchers::Contains;

TEST_CASE("byte tokenizer round-trips text", "[data][tokenizer]") {
  ByteTokenizer t;
  std::string s = "In the beginning God created the heaven and the earth. \xc3\xa9";
  REQUIRE(t.decode(t.encode(s)) == s);
  REQUIRE(t.vocab_size() == 262);
  REQUIRE(t.specials().eos == 256);
}

TEST_CASE("shard write/read round trip and uint16 vs uint32", "[data][shard]") {
  testing::TempDir dir;
  std::vector<int32_t> toks = {1, 2, 3, 256, 70000 % 262, 9};
  auto info = write_shard(dir / "a.bin", toks, {0, 4}, 262);
  REQUIRE(info.dtype_bytes == 2);
  ShardReader r(dir / "a.bin", true);
  std::vector<int64_t> out(6);
  r.read(0, 6, out.data());
  REQUIRE(std::vector<int64_t>(toks.begin(), toks.end()) == out);
  REQUIRE(r.doc_start(1) == 4);
  REQUIRE(r.doc_start(2) == 6);
  auto big = write_shard(dir / "b.bin", {70000, 5}, {0}, 100000);
  REQUIRE(big.dtype_bytes == 4);
  ShardReader rb(dir / "b.bin");
  rb.read(0, 2, out.data());
  REQUIRE(out[0] == 70000);
}

TEST_CASE("a truncated shard is refused with the file and byte offset", "[data][shard]") {
  testing::TempDir dir;
  write_shard(dir / "t.bin", std::vector<int32_t>(1000, 7), {0}, 262);
  std::filesystem::resize_file(dir / "t.bin", 1000);
  REQUIRE_THROWS_WITH(ShardReader(dir / "t.bin"), Contains("t.bin") && Contains("truncated") && Contains("offset 1000"));
  std::ofstream(dir / "junk.bin") << std::string(100, 'x');
  REQUIRE_THROWS_WITH(ShardReader(dir / "junk.bin"), Contains("bad magic"));
}

TEST_CASE("prep splits 95/5, is idempotent, and rebuilds on change", "[data][prep]") {
  testing::TempDir dir;
  testing::write_text((dir / "corpus.txt").string(), testing::synthetic_corpus(400));
  PrepOptions opt;
  opt.inputs = {(dir / "corpus.txt").string()};
  opt.out = (dir / "ds").string();
  auto r1 = prep_dataset(opt);
  REQUIRE_FALSE(r1.skipped);
  REQUIRE(r1.docs == 400);
  double val_frac = double(r1.val_tokens) / double(r1.val_tokens + r1.train_tokens);
  CHECK(val_frac == Approx(0.05).margin(0.01));
  TokenDataset train(opt.out, "train");
  REQUIRE(train.n_tokens() == r1.train_tokens);
  REQUIRE(prep_dataset(opt).skipped);
  REQUIRE_FALSE(std::filesystem::exists(dir / "ds.tmp"));
  testing::write_text((dir / "corpus.txt").string(), testing::synthetic_corpus(300));
  auto r3 = prep_dataset(opt);
  REQUIRE_FALSE(r3.skipped);
  REQUIRE(r3.docs == 300);
}

TEST_CASE("prep errors name the bad input", "[data][prep]") {
  testing::TempDir dir;
  PrepOptions opt;
  opt.out = (dir / "ds").string();
  opt.inputs = {(dir / "missing.txt").string()};
  REQUIRE_THROWS_WITH(prep_dataset(opt), Contains("missing.txt") && Contains("does not exist"));
  testing::write_text((dir / "empty.txt").string(), "");
  opt.inputs = {(dir / "empty.txt").string()};
  REQUIRE_THROWS_WITH(prep_dataset(opt), Contains("empty.txt") && Contains("empty"));
}
