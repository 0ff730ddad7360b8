// `strata prep` inputs: JSONL, directories, parallel tokenization, and the bad-input errors.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/jsonl.hpp"
#include "data/prep.hpp"
#include "data/tokenizer.hpp"
#include "tests/support/corpus.hpp"
#include "tests/support/temp_dir.hpp"

using namespace strata;
using namespace strata::data;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

std::string all_text(const std::string& dir) {
  ByteTokenizer tok;
  std::string out;
  for (const char* split : {"train", "val"}) {
    TokenDataset ds(dir, split);
    std::vector<int64_t> ids(ds.n_tokens());
    ds.read(0, ids.size(), ids.data());
    out += tok.decode(std::vector<int32_t>(ids.begin(), ids.end()));
  }
  return out;
}

}  // namespace

TEST_CASE("JSONL field extraction decodes escapes and skips other values", "[data][prep][jsonl]") {
  REQUIRE(jsonl_field(R"({"id": 3, "meta": {"a": [1, 2.5e3, null, true]}, "text": "caf\u00e9 \"q\"\n\ud83d\ude00"})", "text",
                      "x.jsonl:1") == "caf\xc3\xa9 \"q\"\n\xf0\x9f\x98\x80");
  REQUIRE_THROWS_WITH(jsonl_field(R"({"text": 5})", "text", "x.jsonl:7"), Contains("x.jsonl:7") && Contains("not a string"));
  REQUIRE_THROWS_WITH(jsonl_field(R"({"body": "x"})", "text", "x.jsonl:2"), Contains("x.jsonl:2") && Contains("no field 'text'"));
  REQUIRE_THROWS_WITH(jsonl_field(R"({"text": "abc)", "text", "x.jsonl:4"), Contains("x.jsonl:4") && Contains("invalid JSON"));
}

TEST_CASE("prep reads JSONL records as documents and directories recursively", "[data][prep][jsonl]") {
  testing::TempDir dir;
  fs::create_directories(dir / "in" / "sub");
  {
    std::ofstream f(dir / "in" / "a.jsonl");
    for (int i = 0; i < 60; ++i)
      f << "{\"id\": " << i << ", \"body\": \"record " << i << " caf\\u00e9 with enough words to be a document\"}\n\n";
  }
  testing::write_text((dir / "in" / "sub" / "b.txt").string(), testing::synthetic_corpus(40));
  PrepOptions opt;
  opt.inputs = {(dir / "in").string()};
  opt.out = (dir / "ds").string();
  opt.jsonl_field = "body";
  auto r = prep_dataset(opt);
  REQUIRE(r.docs == 100);
  auto text = all_text(opt.out);
  REQUIRE(text.find("record 59 caf\xc3\xa9") != std::string::npos);
  REQUIRE(text.find("the") != std::string::npos);
  opt.jsonl_field = "text";
  opt.force = true;
  REQUIRE_THROWS_WITH(prep_dataset(opt), Contains("a.jsonl:1") && Contains("no field 'text'"));
}

TEST_CASE("parallel tokenization writes exactly what one thread writes", "[data][prep]") {
  testing::TempDir dir;
  testing::write_text((dir / "c.txt").string(), testing::synthetic_corpus(2000));
  PrepOptions opt;
  opt.inputs = {(dir / "c.txt").string()};
  opt.threads = 1;
  opt.out = (dir / "one").string();
  prep_dataset(opt);
  opt.threads = 4;
  opt.out = (dir / "four").string();
  auto r = prep_dataset(opt);
  REQUIRE(r.mb_per_s() > 0);
  auto a = DatasetManifest::load(dir / "one"), b = DatasetManifest::load(dir / "four");
  REQUIRE(a.train.size() == b.train.size());
  for (size_t i = 0; i < a.train.size(); ++i) REQUIRE(a.train[i].crc32c == b.train[i].crc32c);
  REQUIRE(a.val[0].crc32c == b.val[0].crc32c);
  REQUIRE(a.input_bytes == fs::file_size(dir / "c.txt"));
}

TEST_CASE("invalid UTF-8 is refused with the file and byte offset", "[data][prep][errors]") {
  testing::TempDir dir;
  std::string good = testing::synthetic_corpus(30);
  testing::write_text((dir / "good.txt").string(), good);
  testing::write_text((dir / "bad.txt").string(), "In the beginning\n\xff\xfe and so on");
  PrepOptions opt;
  opt.inputs = {(dir / "good.txt").string(), (dir / "bad.txt").string()};
  opt.out = (dir / "ds").string();
  REQUIRE_THROWS_WITH(prep_dataset(opt), Contains("bad.txt") && Contains("invalid UTF-8 at byte offset 17"));
  testing::write_text((dir / "bad.txt").string(), std::string(1000, 'a') + "\xe2\x82");  // cut-off euro sign
  REQUIRE_THROWS_WITH(prep_dataset(opt), Contains("bad.txt") && Contains("byte offset 1000"));
  testing::write_text((dir / "bad.txt").string(), "ok \xc0\xaf overlong");
  REQUIRE_THROWS_WITH(prep_dataset(opt), Contains("byte offset 3"));
  // A failed prep leaves neither the dataset nor a temporary directory behind.
  for (const auto& e : fs::directory_iterator(dir.path())) REQUIRE(e.path().filename().string().rfind("ds", 0) != 0);
}

TEST_CASE("bad tokenizer options are refused", "[data][prep][errors]") {
  testing::TempDir dir;
  testing::write_text((dir / "c.txt").string(), testing::synthetic_corpus(50));
  PrepOptions opt;
  opt.inputs = {(dir / "c.txt").string()};
  opt.out = (dir / "ds").string();
  opt.tokenizer = "sentencepiece";
  REQUIRE_THROWS_WITH(prep_dataset(opt), Contains("--tokenizer-model"));
  opt.tokenizer_model = (dir / "missing.model").string();
  REQUIRE_THROWS_WITH(prep_dataset(opt), Contains("missing.model") && Contains("does not exist"));
  opt.tokenizer = "wordpiece";
  REQUIRE_THROWS_WITH(prep_dataset(opt), Contains("unknown --tokenizer 'wordpiece'"));
}
