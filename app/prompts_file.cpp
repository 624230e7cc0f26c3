// Parsing of --prompts-file lines with simdjson; every error names the field.
#include "app/prompts_file.hpp"

#include <algorithm>
#include <climits>
#include <fstream>
#include <string>

#include <simdjson.h>

namespace troupe::app {

namespace {

using simdjson::dom::element;

expected<double> number(element v, std::string_view key) {
  double d;
  if (v.is_number() && v.get_double().get(d) == simdjson::SUCCESS) return d;
  return make_error("field \"", key, "\" must be a number");
}

expected<int64_t> integer(element v, std::string_view key) {
  int64_t i;
  if (v.get_int64().get(i) == simdjson::SUCCESS) return i;
  return make_error("field \"", key, "\" must be an integer");
}

expected<bool> boolean(element v, std::string_view key) {
  bool b;
  if (v.get_bool().get(b) == simdjson::SUCCESS) return b;
  return make_error("field \"", key, "\" must be true or false");
}

/// "stop": a string or a list of strings.
expected<std::vector<std::string>> stop_strings(element v) {
  std::string_view s;
  if (v.get_string().get(s) == simdjson::SUCCESS) return std::vector<std::string>{std::string(s)};
  simdjson::dom::array arr;
  if (v.get_array().get(arr) != simdjson::SUCCESS)
    return make_error("field \"stop\" must be a string or a list of strings");
  std::vector<std::string> out;
  for (element item : arr) {
    if (item.get_string().get(s) != simdjson::SUCCESS)
      return make_error("field \"stop\" must be a string or a list of strings");
    out.emplace_back(s);
  }
  return out;
}

/// "logit_bias": {"token id": bias, ...} as OpenAI sends it.
expected<std::vector<std::pair<int32_t, float>>> logit_bias(element v) {
  simdjson::dom::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS)
    return make_error("field \"logit_bias\" must be an object of token id -> bias");
  std::vector<std::pair<int32_t, float>> out;
  for (auto field : obj) {
    std::string key(field.key);
    size_t used = 0;
    long id = -1;
    try {
      id = std::stol(key, &used);
    } catch (...) {
      used = 0;
    }
    if (used != key.size() || id < 0 || id > INT32_MAX)
      return make_error("field \"logit_bias\": \"", key, "\" is not a token id");
    auto bias = number(field.value, "logit_bias");
    if (!bias) return bias.error();
    out.emplace_back(int32_t(id), float(*bias));
  }
  return out;
}

/// Sets one field of the request; an error names it.
expected<void> set_field(engine::llm_request& r, std::string_view key, element v) {
  auto& p = r.params;
  auto& s = p.sampling;
  auto num = [&](float& dst) -> expected<void> {
    auto d = number(v, key);
    if (!d) return d.error();
    dst = float(*d);
    return {};
  };
  if (key == "prompt") {
    std::string_view text;
    if (v.get_string().get(text) != simdjson::SUCCESS) return make_error("field \"prompt\" must be a string");
    r.prompt = std::string(text);
  } else if (key == "max_tokens") {
    auto i = integer(v, key);
    if (!i) return i.error();
    if (*i < 0) return make_error("field \"max_tokens\" must be >= 0");
    p.max_tokens = *i;
  } else if (key == "temperature") {
    return num(s.temperature);
  } else if (key == "top_p") {
    return num(s.top_p);
  } else if (key == "min_p") {
    return num(s.min_p);
  } else if (key == "repetition_penalty") {
    return num(s.repetition_penalty);
  } else if (key == "presence_penalty") {
    return num(s.presence_penalty);
  } else if (key == "frequency_penalty") {
    return num(s.frequency_penalty);
  } else if (key == "top_k" || key == "seed" || key == "n" || key == "priority") {
    auto i = integer(v, key);
    if (!i) return i.error();
    if (key == "top_k") s.top_k = int32_t(std::clamp<int64_t>(*i, -2, INT32_MAX));
    if (key == "seed") s.seed = uint64_t(*i);
    if (key == "n") {
      if (*i < 1 || *i > 128) return make_error("field \"n\" must be in [1, 128]");
      p.n = int32_t(*i);
    }
    if (key == "priority") p.priority = int32_t(std::clamp<int64_t>(*i, INT32_MIN, INT32_MAX));
  } else if (key == "ignore_eos") {
    auto b = boolean(v, key);
    if (!b) return b.error();
    p.ignore_eos = *b;
  } else if (key == "stop") {
    auto st = stop_strings(v);
    if (!st) return st.error();
    p.stop = std::move(*st);
  } else if (key == "logit_bias") {
    auto lb = logit_bias(v);
    if (!lb) return lb.error();
    s.logit_bias = std::move(*lb);
  } else {
    return make_error("unknown field \"", key, "\"");
  }
  return {};
}

}  // namespace

expected<engine::llm_request> parse_prompt_line(std::string_view line) {
  simdjson::dom::parser parser;
  simdjson::padded_string text(line);
  simdjson::dom::object obj;
  if (auto err = parser.parse(text).get_object().get(obj))
    return make_error("not a JSON object (", simdjson::error_message(err), ")");
  engine::llm_request r;
  bool has_prompt = false;
  for (auto field : obj) {
    if (field.key == "prompt") has_prompt = true;
    if (auto ok = set_field(r, field.key, field.value); !ok) return ok.error();
  }
  if (!has_prompt) return make_error("field \"prompt\" is missing");
  return r;
}

expected<std::vector<engine::llm_request>> read_prompts_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return make_error(path, ": cannot open file");
  std::vector<engine::llm_request> out;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto r = parse_prompt_line(line);
    if (!r) return make_error(path, ": line ", number, ": ", r.error().message);
    out.push_back(std::move(*r));
  }
  if (out.empty()) return make_error(path, ": no prompts (one JSON object per line expected)");
  return out;
}

}  // namespace troupe::app
