// Unit tests of the tokenizer's pieces: BPE merges (scan and heap agree), byte fallback, unknown tokens,
// added-token lstrip/rstrip/single_word, template processing, errors for bad files and invalid UTF-8.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/bpe_model.hpp"
#include "engine/tokenizer/tokenizer.hpp"
#include "engine/tokenizer/unicode.hpp"

using namespace troupe;
using engine::tokenizer;
using ids = std::vector<int32_t>;

namespace {

// A small tokenizer.json: vocabulary a b c ab bc abc ▁ x <0x..> bytes for 'é', and the given parts.
std::string tiny_json(const std::string& merges, const std::string& added = "[]", const std::string& extra = "",
                      const std::string& model_extra = "") {
  return R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":)" + added +
         R"(,"normalizer":null,"pre_tokenizer":{"type":"Split","pattern":{"String":" "},"behavior":"Removed"},)" +
         R"("post_processor":null,"decoder":null,)" + extra +
         R"("model":{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,)" +
         R"("end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":true,)" + model_extra +
         R"("vocab":{"<unk>":0,"a":1,"b":2,"c":3,"ab":4,"bc":5,"abc":6,"<0xC3>":7,"<0xA9>":8,"x":9,"<X>":10,)" +
         R"("aa":11,"aaa":12,"aaaa":13},"merges":)" + merges + "}}";
}

tokenizer make(const std::string& json) {
  auto t = tokenizer::from_json(json, "test.json");
  INFO((t ? std::string("ok") : t.error().message));
  REQUIRE(t.has_value());
  return *t;
}

ids enc(const tokenizer& t, const std::string& s, bool special = true) {
  auto r = t.encode(s, special);
  INFO((r ? std::string("ok") : r.error().message));
  REQUIRE(r.has_value());
  return *r;
}

}  // namespace

TEST_CASE("BPE applies merges by rank, leftmost first on ties") {
  CHECK(enc(make(tiny_json(R"(["a b","ab c"])")), "abc") == ids{6});
  CHECK(enc(make(tiny_json(R"(["b c","a b"])")), "abc") == ids{1, 5});  // bc first, and "a bc" is no merge
  CHECK(enc(make(tiny_json(R"([["a","b"],["ab","c"]])")), "abcab c") == ids{6, 4, 3});
  CHECK(enc(make(tiny_json(R"(["a a","aa a","aa aa"])")), "aaaaa") == ids{11, 12});  // aa a a a, aa aa a, aa aaa
}

TEST_CASE("scan and heap merge loops agree on random words") {
  engine::tok::bpe_model m;
  // Alphabet of 4 letters; every pair of vocabulary strings up to length 6 is a merge, in a shuffled order.
  std::vector<std::string> vocab = {"p", "q", "r", "s"};
  for (std::size_t i = 0; i < vocab.size() && vocab.size() < 300; ++i)
    for (const char* c : {"p", "q", "r", "s"})
      if (vocab[i].size() < 6) vocab.push_back(vocab[i] + c);
  for (std::size_t i = 0; i < vocab.size(); ++i) m.vocab.emplace(vocab[i], static_cast<int32_t>(i));
  std::vector<std::pair<std::string, std::string>> merges;
  for (const auto& v : vocab)
    for (std::size_t k = 1; k < v.size(); ++k) merges.emplace_back(v.substr(0, k), v.substr(k));
  std::mt19937 rng(7);
  std::shuffle(merges.begin(), merges.end(), rng);
  REQUIRE(m.set_merges(merges).has_value());
  m.finish_setup();
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<int32_t> a(1 + rng() % 64);  // merge_scan takes words of up to 64 symbols
    for (auto& x : a) x = static_cast<int32_t>(rng() % 4);
    std::vector<int32_t> b = a;
    m.merge_scan(a);
    m.merge_heap(b);
    REQUIRE(a == b);
  }
}

TEST_CASE("byte fallback and unknown tokens") {
  auto t = make(tiny_json("[]"));
  CHECK(enc(t, "\xC3\xA9") == ids{7, 8});      // é is not in the vocabulary: its bytes are
  CHECK(enc(t, "a\xE2\x82\xAC") == ids{1, 0});  // € has no byte tokens here: <unk>
  std::string json = tiny_json("[]");
  json.replace(json.find("\"byte_fallback\":true"), 20, "\"byte_fallback\":false");
  auto single = make(json);
  CHECK(enc(single, "a\xC3\xA9\xC3\xA9" "b") == ids{1, 0, 0, 2});
  json.replace(json.find("\"fuse_unk\":false"), 16, "\"fuse_unk\":true");
  CHECK(enc(make(json), "a\xC3\xA9\xC3\xA9" "b") == ids{1, 0, 2});
}

TEST_CASE("added tokens honour lstrip, rstrip and single_word") {
  auto tok = [](const char* flags) {
    return make(tiny_json("[]", std::string(R"([{"id":10,"content":"<X>","special":true,"normalized":false,)") +
                                    flags + "}]"));
  };
  // The pre-tokenizer drops spaces, so a space kept beside <X> would show as nothing; use 'x' as a marker.
  CHECK(enc(tok(R"("lstrip":false,"rstrip":false,"single_word":false)"), "a<X>b") == ids{1, 10, 2});
  CHECK(enc(tok(R"("lstrip":true,"rstrip":false,"single_word":false)"), "a  <X>b") == ids{1, 10, 2});
  CHECK(enc(tok(R"("lstrip":false,"rstrip":true,"single_word":false)"), "a<X>  b") == ids{1, 10, 2});
  auto single = tok(R"("lstrip":false,"rstrip":false,"single_word":true)");
  CHECK(enc(single, "a <X> b") == ids{1, 10, 2});
  CHECK(enc(single, "a<X> b")[1] != 10);  // inside a word: not the added token
  CHECK(enc(single, "a <X>b")[1] != 10);
}

TEST_CASE("template processing adds special tokens only when asked") {
  std::string post = R"("post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<X>","type_id":0}},)"
                     R"({"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<X>","type_id":0}}],)"
                     R"("pair":[],"special_tokens":{"<X>":{"id":"<X>","ids":[10],"tokens":["<X>"]}}},)";
  std::string json = tiny_json("[]", R"([{"id":10,"content":"<X>","special":true}])");
  const std::string none = R"("post_processor":null,)";
  json.replace(json.find(none), none.size(), post);
  auto t = make(json);
  CHECK(enc(t, "ab") == ids{10, 1, 2, 10});
  CHECK(enc(t, "ab", false) == ids{1, 2});
  CHECK(t.decode(ids{10, 1, 10}, true) == "a");
  CHECK(t.decode(ids{10, 1, 10}, false) == "<X> a <X>");  // no decoder: tokens joined by spaces
  CHECK(t.is_special(10));
  CHECK_FALSE(t.is_special(1));
}

TEST_CASE("invalid UTF-8 is an error, valid edge cases are not") {
  auto t = make(tiny_json("[]"));
  for (std::string bad : {"\xFF", "a\xC3", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80", "ab\x80"}) {
    auto r = t.encode(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("UTF-8") != std::string::npos);
  }
  CHECK(t.encode("\xF4\x8F\xBF\xBF").has_value());  // U+10FFFF
  CHECK(t.encode("").has_value());
}

TEST_CASE("a regex that gives up is an error, not a silent split") {
  std::string json = tiny_json("[]");
  const std::string split = R"({"type":"Split","pattern":{"String":" "},"behavior":"Removed"})";
  json.replace(json.find(split), split.size(),
               R"({"type":"Split","pattern":{"Regex":"(a+)+[bc]"},"behavior":"Isolated","invert":false})");
  auto t = make(json);
  CHECK(enc(t, "aab") == ids{1, 1, 2});  // no merges in this vocabulary: one id per character
  auto r = t.encode(std::string(40, 'a'));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message.find("match limit") != std::string::npos);
}

TEST_CASE("a match too deep for the JIT stack falls back to the interpreter") {
  std::string json = tiny_json("[]");
  const std::string split = R"({"type":"Split","pattern":{"String":" "},"behavior":"Removed"})";
  json.replace(json.find(split), split.size(),
               R"({"type":"Split","pattern":{"Regex":"(a|b)*c"},"behavior":"Isolated","invert":false})");
  auto r = make(json).encode(std::string(100000, 'a') + "c");
  INFO((r ? std::string("ok") : r.error().message));
  REQUIRE(r.has_value());
  CHECK(r->size() == 100001);
}

TEST_CASE("lossy UTF-8 decoding replaces maximal invalid subparts like Rust") {
  using engine::unicode::from_utf8_lossy;
  const std::string r = "\xEF\xBF\xBD";
  CHECK(from_utf8_lossy("a\xE4\xB8") == "a" + r);
  CHECK(from_utf8_lossy("\xE4\xB8\xE4\xB8\xAD") == r + "\xE4\xB8\xAD");
  CHECK(from_utf8_lossy("\xF0\x80") == r + r);  // F0 80: 80 cannot follow F0
  CHECK(from_utf8_lossy("\xED\xA0\x80") == r + r + r);
  CHECK(from_utf8_lossy("ok") == "ok");
}

TEST_CASE("bad tokenizer files give errors that name the file and the problem") {
  auto missing = tokenizer::load("/nonexistent/dir");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message.find("/nonexistent/dir") == 0);
  auto bad_json = tokenizer::from_json("{\"model\": ", "x.json");
  REQUIRE_FALSE(bad_json.has_value());
  CHECK(bad_json.error().message.find("x.json") == 0);
  std::string wp = tiny_json("[]");
  wp.replace(wp.find(R"("type":"BPE")"), 12, R"("type":"WordPiece")");
  auto r = tokenizer::from_json(wp, "wp.json");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message.find("WordPiece") != std::string::npos);
  std::string lower = tiny_json("[]");
  lower.replace(lower.find(R"("normalizer":null)"), 17, R"("normalizer":{"type":"Lowercase"})");
  r = tokenizer::from_json(lower, "lc.json");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message.find("Lowercase") != std::string::npos);
  std::string huge = tiny_json("[]");
  huge.replace(huge.find(R"("x":9)"), 5, R"("x":2000000000)");
  r = tokenizer::from_json(huge, "h.json");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message.find("'x' has no valid id") != std::string::npos);
  auto bad_merge = tokenizer::from_json(tiny_json(R"(["a z"])"), "m.json");
  REQUIRE_FALSE(bad_merge.has_value());
  CHECK(bad_merge.error().message.find("'z'") != std::string::npos);
  CHECK(bad_merge.error().message.find("merge 0") != std::string::npos);
}

TEST_CASE("the bundled stories260k tokenizer") {
  auto t = tokenizer::load(TROUPE_DEFAULT_MODEL);
  REQUIRE(t.has_value());
  CHECK(t->vocab_size() == 512);
  CHECK(t->token_to_id("<s>") == 1);
  CHECK(t->id_to_token(2) == "</s>");
  CHECK(t->is_byte_token(*t->token_to_id("<0x0A>")));
  auto r = t->encode("Once upon a time");
  REQUIRE(r.has_value());
  CHECK(r->front() == 1);
  CHECK(t->decode(*r, true) == "Once upon a time");
  CHECK(t->decode(*r, false) == "<s> Once upon a time");
}
