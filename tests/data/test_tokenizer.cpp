// Tokenizer round trips (byte and SentencePiece, with a tiny model trained here), special tokens,
// and rebuilding a dataset's tokenizer from its manifest.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "data/dataset.hpp"
#include "data/prep.hpp"
#include "data/sentencepiece.hpp"
#include "data/tokenizer.hpp"
#include "tests/support/corpus.hpp"
#include "tests/support/temp_dir.hpp"

using namespace strata;
using namespace strata::data;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const std::string kSample = "the king went up to the city. \nA shepherd blessed   the land; caf\xc3\xa9 \xe2\x82\xac 42\n\n";

PrepOptions spm_prep(const testing::TempDir& dir, const std::string& model_type) {
  testing::write_text((dir / "corpus.txt").string(), testing::synthetic_corpus(300) + kSample);
  PrepOptions opt;
  opt.inputs = {(dir / "corpus.txt").string()};
  opt.out = (dir / ("ds-" + model_type)).string();
  opt.train_tokenizer = true;
  opt.vocab_size = 400;
  opt.model_type = model_type;
  opt.threads = 2;
  return opt;
}

}  // namespace

TEST_CASE("byte tokenizer: every special has its own id after 255", "[data][tokenizer]") {
  ByteTokenizer t;
  auto ids = t.specials().ids();
  REQUIRE(ids == std::vector<int32_t>{256, 257, 258, 259, 260, 261});
  REQUIRE(t.decode({72, 256, 105, 259}) == "Hi");
  REQUIRE(make_tokenizer("byte-v1")->identity() == "byte-v1");
  REQUIRE(tokenizer_kind("byte-v1") == "byte");
}

TEST_CASE("SentencePiece BPE and unigram trained by prep round-trip text", "[data][tokenizer][sentencepiece]") {
  testing::TempDir dir;
  for (std::string type : {"bpe", "unigram"}) {
    auto opt = spm_prep(dir, type);
    auto res = prep_dataset(opt);
    REQUIRE_FALSE(res.skipped);
    REQUIRE(fs::exists(fs::path(opt.out) / "tokenizer.model"));
    auto m = DatasetManifest::load(opt.out);
    REQUIRE(tokenizer_kind(m.tokenizer) == "sentencepiece");
    REQUIRE(m.tokenizer_model == "tokenizer.model");
    auto tok = load_dataset_tokenizer(opt.out);
    REQUIRE(tok->identity() == m.tokenizer);
    REQUIRE(tok->vocab_size() == m.vocab_size);
    REQUIRE(tok->vocab_size() <= 400);
    auto ids = tok->encode(kSample);
    REQUIRE(tok->decode(ids) == kSample);  // identity normalisation + byte fallback: lossless
    // Subwords, not bytes: the corpus's common words take few tokens (BPE learns whole words from
    // this tiny corpus; unigram, with ~50 pieces beyond the bytes, fewer).
    const std::string common = "the king went up to the city. the people blessed the land. ";
    REQUIRE(tok->encode(common).size() < common.size() / (type == "bpe" ? 3 : 1));
    const auto& sp = tok->specials();
    REQUIRE(sp.bos == 1);
    REQUIRE(sp.eos == 2);
    REQUIRE(sp.pad == 3);
    REQUIRE(sp.mask >= 0);
    REQUIRE(sp.cls >= 0);
    REQUIRE(sp.sep >= 0);
    // Special pieces in the text are text, never the special ids.
    for (int32_t id : tok->encode("[MASK] </s> [CLS]")) REQUIRE_FALSE((id == sp.mask || id == sp.eos || id == sp.cls));
    // The shards hold the same ids as encoding the document directly.
    TokenDataset train(opt.out, "train");
    std::vector<int64_t> first(8);
    train.read(0, 8, first.data());
    auto doc0 = tok->encode(testing::synthetic_corpus(1).substr(0, testing::synthetic_corpus(1).size() - 2));
    REQUIRE(std::vector<int64_t>(doc0.begin(), doc0.begin() + 8) == first);
    // Unchanged input: nothing to do.
    REQUIRE(prep_dataset(opt).skipped);
  }
}

TEST_CASE("a SentencePiece .model loads with configurable specials; missing pieces get new ids", "[data][tokenizer][sentencepiece]") {
  testing::TempDir dir;
  auto opt = spm_prep(dir, "bpe");
  prep_dataset(opt);
  fs::path model = fs::path(opt.out) / "tokenizer.model";
  auto base = SentencePieceTokenizer::load(model, SpecialPieces{});
  const int64_t pieces = base->model_pieces();
  auto custom = SentencePieceTokenizer::load(model, SpecialPieces::parse("mask=<my_mask>,cls=,sep=<my_sep>"));
  REQUIRE(custom->specials().eos == 2);
  REQUIRE(custom->specials().cls == -1);
  REQUIRE(custom->specials().mask == pieces);
  REQUIRE(custom->specials().sep == pieces + 1);
  REQUIRE(custom->vocab_size() == pieces + 2);
  REQUIRE(custom->identity() != base->identity());
  REQUIRE(custom->decode({custom->specials().mask, 5}) == base->decode({5}));
  REQUIRE_THROWS_WITH(SpecialPieces::parse("eos="), Contains("eos is required"));
  REQUIRE_THROWS_WITH(SpecialPieces::parse("msk=x"), Contains("unknown role 'msk'"));
  REQUIRE_THROWS_WITH(SentencePieceTokenizer::load(dir / "nope.model", {}), Contains("nope.model") && Contains("does not exist"));

  // prep with an existing model copies it into the dataset and names it by checksum.
  PrepOptions load = opt;
  load.train_tokenizer = false;
  load.tokenizer = "sentencepiece";
  load.tokenizer_model = model.string();
  load.out = (dir / "ds-loaded").string();
  prep_dataset(load);
  REQUIRE(DatasetManifest::load(load.out).tokenizer == base->identity());
  REQUIRE(read_file(fs::path(load.out) / "tokenizer.model") == read_file(model));
}

TEST_CASE("a replaced tokenizer.model is refused, naming the file", "[data][tokenizer][sentencepiece]") {
  testing::TempDir dir;
  auto opt = spm_prep(dir, "bpe");
  prep_dataset(opt);
  auto other = spm_prep(dir, "unigram");
  prep_dataset(other);
  fs::copy_file(fs::path(other.out) / "tokenizer.model", fs::path(opt.out) / "tokenizer.model",
                fs::copy_options::overwrite_existing);
  REQUIRE_THROWS_WITH(load_dataset_tokenizer(opt.out), Contains("tokenizer.model") && Contains("checksum"));
  fs::remove(fs::path(opt.out) / "tokenizer.model");
  REQUIRE_THROWS_WITH(load_dataset_tokenizer(opt.out), Contains("has no tokenizer.model"));
  REQUIRE_THROWS_WITH(make_tokenizer("wordpiece-v3"), Contains("unknown tokenizer 'wordpiece-v3'"));
}
