// `troupe tokenize`: encodes text to ids or decodes ids to text with a tokenizer.json (one or many per run).
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "app/commands.hpp"
#include "app/json_out.hpp"
#include "engine/tokenizer/tokenizer.hpp"

namespace troupe::app {

namespace {

struct tokenize_args {
  std::string tokenizer = TROUPE_DEFAULT_MODEL;
  std::string text;
  std::string jsonl;
  bool no_special = false;
  bool decode = false;
  int bench = 0;
  bool has_text = false;  // --text was given (it may be empty)
};

int fail(const std::string& msg) {
  std::fprintf(stderr, "troupe tokenize: %s\n", msg.c_str());
  return 1;
}

// Parses a JSON array of integer ids.
expected<std::vector<int32_t>> parse_ids(simdjson::dom::parser& parser, const std::string& s) {
  simdjson::dom::array arr;
  if (parser.parse(s).get_array().get(arr) != simdjson::SUCCESS) return make_error("not a JSON array of ids");
  std::vector<int32_t> ids;
  for (auto v : arr) {
    int64_t x = 0;
    if (v.get_int64().get(x) != simdjson::SUCCESS || x < INT32_MIN || x > INT32_MAX)
      return make_error("an id is not a 32-bit integer");
    ids.push_back(static_cast<int32_t>(x));
  }
  return ids;
}

expected<std::string> parse_string(simdjson::dom::parser& parser, const std::string& s) {
  std::string_view v;
  if (parser.parse(s).get_string().get(v) != simdjson::SUCCESS) return make_error("not a JSON string");
  return std::string(v);
}

// One unit of work: encode a text or decode an array; prints the result line.
expected<std::string> run_one(const engine::tokenizer& tok, const tokenize_args& a, const std::string& input,
                              bool jsonl) {
  if (a.decode) {
    simdjson::dom::parser parser;
    auto ids = parse_ids(parser, input);
    if (!ids) return ids.error();
    std::string text = tok.decode(*ids, a.no_special);
    return jsonl ? json_string(text) : text;
  }
  auto ids = tok.encode(input, !a.no_special);
  if (!ids) return ids.error();
  return json_ids(*ids);
}

// Times encoding of all texts, repeated, and prints throughput as one JSON line.
int run_bench(const engine::tokenizer& tok, const tokenize_args& a, const std::vector<std::string>& texts) {
  std::size_t bytes = 0, tokens = 0;
  for (const auto& t : texts) bytes += t.size();
  auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < a.bench; ++r) {
    for (const auto& t : texts) {
      auto ids = tok.encode(t, !a.no_special);
      if (!ids) return fail(ids.error().message);
      tokens += ids->size();
    }
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double total = double(bytes) * a.bench;
  std::printf("{\"strings\":%zu,\"repeats\":%d,\"bytes\":%.0f,\"tokens\":%zu,\"seconds\":%.4f,"
              "\"mb_per_s\":%.3f,\"strings_per_s\":%.1f}\n",
              texts.size(), a.bench, total, tokens, s, total / s / 1e6, double(texts.size()) * a.bench / s);
  return 0;
}

int run_tokenize(const tokenize_args& a) {
  if (a.has_text == !a.jsonl.empty()) return fail("give exactly one of --text and --jsonl");
  if (a.bench > 0 && a.jsonl.empty()) return fail("--bench needs --jsonl");
  auto tok = engine::tokenizer::load(a.tokenizer);
  if (!tok) return fail(tok.error().message);
  if (a.jsonl.empty()) {
    auto out = run_one(*tok, a, a.text, false);
    if (!out) return fail(out.error().message);
    std::fwrite(out->data(), 1, out->size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  }
  std::ifstream file;
  if (a.jsonl != "-") {
    file.open(a.jsonl, std::ios::binary);
    if (!file) return fail(a.jsonl + ": cannot open");
  }
  std::istream& in = a.jsonl == "-" ? std::cin : file;
  simdjson::dom::parser parser;
  std::vector<std::string> texts;
  std::string line, out;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (a.bench > 0) {
      auto s = parse_string(parser, line);
      if (!s) return fail(a.jsonl + ":" + std::to_string(n) + ": " + s.error().message);
      texts.push_back(std::move(*s));
      continue;
    }
    expected<std::string> input = a.decode ? expected<std::string>(line) : parse_string(parser, line);
    if (!input) return fail(a.jsonl + ":" + std::to_string(n) + ": " + input.error().message);
    auto r = run_one(*tok, a, *input, true);
    if (!r) return fail(a.jsonl + ":" + std::to_string(n) + ": " + r.error().message);
    out += *r;
    out += '\n';
    if (out.size() > (1u << 16)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (a.bench > 0) return run_bench(*tok, a, texts);
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<tokenize_args>();
  auto* cmd = app.add_subcommand("tokenize", "Encode text to token ids, or decode ids to text");
  cmd->add_option("--tokenizer", args->tokenizer, "Folder holding tokenizer.json, or the file itself")
      ->capture_default_str();
  auto* text = cmd->add_option("--text", args->text, "Text to encode (with --decode: a JSON array of ids)");
  cmd->add_option("--jsonl", args->jsonl,
                  "File ('-': stdin) of one JSON string per line (--decode: one JSON id array per line)");
  cmd->add_flag("--no-special", args->no_special,
                "Encode without the template's special tokens; with --decode, skip special tokens");
  cmd->add_flag("--decode", args->decode, "Turn ids back into text (a JSON string per line with --jsonl)");
  cmd->add_option("--bench", args->bench, "With --jsonl: time encoding the file N times, print throughput");
  cmd->callback([args, text] {
    args->has_text = text->count() > 0;
    int rc = run_tokenize(*args);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace troupe::app
