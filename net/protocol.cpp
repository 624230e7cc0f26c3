// Parsing and validation of OpenAI completion and chat completion requests; every error names the field.
#include "net/protocol.hpp"

#include <climits>
#include <cmath>
#include <string>

#include <simdjson.h>

#include "net/json_writer.hpp"

namespace troupe::net {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

/// A field's value or the error that it has the wrong type or range.
template <class T>
using field_result = std::variant<T, api_error>;

std::string type_error(std::string_view key, std::string_view wanted) {
  return "'" + std::string(key) + "' must be " + std::string(wanted);
}

field_result<double> number_in(element v, std::string_view key, double lo, double hi, bool lo_open = false) {
  double d;
  if (!v.is_number() || v.get_double().get(d) != simdjson::SUCCESS)
    return bad_field(key, type_error(key, "a number"));
  if (!std::isfinite(d) || d < lo || d > hi || (lo_open && d == lo)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "'%.*s' must be %s %g and <= %g, got %g", int(key.size()), key.data(),
                  lo_open ? ">" : ">=", lo, hi, d);
    return bad_field(key, buf);
  }
  return d;
}

field_result<int64_t> integer_in(element v, std::string_view key, int64_t lo, int64_t hi) {
  int64_t i;
  if (v.get_int64().get(i) != simdjson::SUCCESS) {
    uint64_t u;
    if (v.get_uint64().get(u) == simdjson::SUCCESS)
      return bad_field(key, "'" + std::string(key) + "' is too large");
    double d;
    // 5.0 is accepted as 5 (JSON has one number type); 5.5 is not.
    if (v.is_number() && v.get_double().get(d) == simdjson::SUCCESS && d == std::floor(d) &&
        std::fabs(d) < 9.0e15) {
      i = int64_t(d);
    } else {
      return bad_field(key, type_error(key, "an integer"));
    }
  }
  if (i < lo || i > hi)
    return bad_field(key, "'" + std::string(key) + "' must be in [" + std::to_string(lo) + ", " +
                              std::to_string(hi) + "], got " + std::to_string(i));
  return i;
}

field_result<bool> boolean(element v, std::string_view key) {
  bool b;
  if (v.get_bool().get(b) != simdjson::SUCCESS) return bad_field(key, type_error(key, "true or false"));
  return b;
}

field_result<std::string> string_of(element v, std::string_view key) {
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) return bad_field(key, type_error(key, "a string"));
  return std::string(s);
}

/// "stop": a string or a list of at most 16 strings (OpenAI allows 4; vLLM more).
field_result<std::vector<std::string>> stop_strings(element v) {
  std::string_view s;
  std::vector<std::string> out;
  if (v.get_string().get(s) == simdjson::SUCCESS) {
    if (!s.empty()) out.emplace_back(s);
    return out;
  }
  simdjson::dom::array arr;
  if (v.get_array().get(arr) != simdjson::SUCCESS)
    return bad_field("stop", "'stop' must be a string or a list of strings");
  for (element item : arr) {
    if (item.get_string().get(s) != simdjson::SUCCESS)
      return bad_field("stop", "'stop' must be a string or a list of strings");
    if (!s.empty()) out.emplace_back(s);
  }
  if (out.size() > 16) return bad_field("stop", "'stop' may hold at most 16 strings");
  return out;
}

/// "logit_bias": {"token id": bias in [-100, 100], ...}.
field_result<std::vector<std::pair<int32_t, float>>> logit_bias(element v) {
  simdjson::dom::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS)
    return bad_field("logit_bias", "'logit_bias' must be an object mapping token ids to biases");
  std::vector<std::pair<int32_t, float>> out;
  for (auto field : obj) {
    std::string_view key = field.key;
    int64_t id = 0;
    bool ok = !key.empty() && key.size() <= 10;
    for (char c : key) {
      if (c < '0' || c > '9') ok = false;
      else id = id * 10 + (c - '0');
    }
    if (!ok || id > INT32_MAX)
      return bad_field("logit_bias", "'logit_bias' key \"" + std::string(key) + "\" is not a token id");
    auto bias = number_in(field.value, "logit_bias", -100.0, 100.0);
    if (auto* e = std::get_if<api_error>(&bias)) return *e;
    out.emplace_back(int32_t(id), float(std::get<double>(bias)));
  }
  return out;
}

/// A token-id array ([1, 2, 3]); nothing when `v` is not one.
std::optional<std::vector<int32_t>> token_ids(element v) {
  simdjson::dom::array arr;
  if (v.get_array().get(arr) != simdjson::SUCCESS) return std::nullopt;
  std::vector<int32_t> ids;
  for (element item : arr) {
    int64_t id;
    if (item.get_int64().get(id) != simdjson::SUCCESS || id < 0 || id > INT32_MAX) return std::nullopt;
    ids.push_back(int32_t(id));
  }
  return ids;
}

/// "prompt": a string, a list of strings, a list of token ids, or a list of lists of token ids.
field_result<std::vector<prompt_input>> prompts(element v) {
  std::string_view s;
  if (v.get_string().get(s) == simdjson::SUCCESS) return std::vector<prompt_input>{std::string(s)};
  const auto wrong = bad_field("prompt",
                               "'prompt' must be a string, a list of strings, a list of token ids or a "
                               "list of lists of token ids");
  simdjson::dom::array arr;
  if (v.get_array().get(arr) != simdjson::SUCCESS) return wrong;
  if (arr.size() == 0) return bad_field("prompt", "'prompt' must not be an empty list");
  std::vector<prompt_input> out;
  if (arr.at(0).is_number()) {
    auto ids = token_ids(v);
    if (!ids) return wrong;
    out.emplace_back(std::move(*ids));
    return out;
  }
  for (element item : arr) {
    if (item.get_string().get(s) == simdjson::SUCCESS) {
      out.emplace_back(std::string(s));
    } else if (auto ids = token_ids(item); ids && !ids->empty()) {
      out.emplace_back(std::move(*ids));
    } else {
      return wrong;
    }
  }
  if (out.size() > 256) return bad_field("prompt", "'prompt' may hold at most 256 prompts");
  return out;
}

#define TROUPE_TAKE(var, expr)                                \
  auto var##_r = (expr);                                      \
  if (auto* e_ = std::get_if<api_error>(&var##_r)) return *e_; \
  auto var = std::move(std::get<0>(var##_r))

/// Sets a field both endpoints share; false when `key` is not one of them.
field_result<bool> common_field(openai_request& r, std::string_view key, element v) {
  auto& p = r.params;
  auto& s = p.sampling;
  if (key == "model") {
    TROUPE_TAKE(m, string_of(v, key));
    r.model = std::move(m);
  } else if (key == "max_tokens" || key == "max_completion_tokens") {
    TROUPE_TAKE(i, integer_in(v, key, 1, INT32_MAX));
    p.max_tokens = i;
    r.max_tokens_given = true;
  } else if (key == "temperature") {
    TROUPE_TAKE(d, number_in(v, key, 0.0, 2.0));
    s.temperature = float(d);
  } else if (key == "top_p") {
    TROUPE_TAKE(d, number_in(v, key, 0.0, 1.0, true));
    s.top_p = float(d);
  } else if (key == "top_k") {
    TROUPE_TAKE(i, integer_in(v, key, -1, INT32_MAX));
    s.top_k = int32_t(i);
  } else if (key == "min_p") {
    TROUPE_TAKE(d, number_in(v, key, 0.0, 1.0));
    s.min_p = float(d);
  } else if (key == "presence_penalty" || key == "frequency_penalty") {
    TROUPE_TAKE(d, number_in(v, key, -2.0, 2.0));
    (key == "presence_penalty" ? s.presence_penalty : s.frequency_penalty) = float(d);
  } else if (key == "repetition_penalty") {
    TROUPE_TAKE(d, number_in(v, key, 0.0, 2.0, true));
    s.repetition_penalty = float(d);
  } else if (key == "logit_bias") {
    TROUPE_TAKE(lb, logit_bias(v));
    s.logit_bias = std::move(lb);
  } else if (key == "seed") {
    TROUPE_TAKE(i, integer_in(v, key, INT64_MIN, INT64_MAX));
    s.seed = uint64_t(i);
  } else if (key == "stop") {
    TROUPE_TAKE(st, stop_strings(v));
    p.stop = std::move(st);
  } else if (key == "n") {
    TROUPE_TAKE(i, integer_in(v, key, 1, 128));
    p.n = int32_t(i);
  } else if (key == "stream") {
    TROUPE_TAKE(b, boolean(v, key));
    r.stream = b;
  } else if (key == "stream_options") {
    simdjson::dom::object obj;
    if (v.get_object().get(obj) != simdjson::SUCCESS)
      return bad_field(key, "'stream_options' must be an object");
    for (auto f : obj) {
      if (f.key != "include_usage" || f.value.is_null()) continue;
      TROUPE_TAKE(b, boolean(f.value, "stream_options.include_usage"));
      r.include_usage = b;
    }
  } else if (key == "ignore_eos") {
    TROUPE_TAKE(b, boolean(v, key));
    p.ignore_eos = b;
  } else if (key == "best_of") {
    TROUPE_TAKE(i, integer_in(v, key, 1, 128));
    if (i != p.n && i != 1) return bad_field(key, "'best_of' other than 1 or n is not supported");
  } else if (key == "user" || key == "metadata" || key == "store" || key == "service_tier" ||
             key == "parallel_tool_calls" || key == "tool_choice") {
    // Accepted and ignored (no effect on generation here).
  } else {
    return false;
  }
  return true;
}

/// Parses `body` as a JSON object and calls `set(key, value)` for every non-null field.
template <class Set>
std::optional<api_error> for_each_field(std::string_view body, Set&& set) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string text(body);
  simdjson::dom::object obj;
  element root;
  if (auto err = parser.parse(text).get(root))
    return api_error{400, std::string("the body is not valid JSON: ") + simdjson::error_message(err)};
  if (root.get_object().get(obj) != simdjson::SUCCESS)
    return api_error{400, "the body must be a JSON object"};
  for (auto field : obj) {
    if (field.value.is_null()) continue;
    if (auto e = set(field.key, field.value)) return e;
  }
  return std::nullopt;
}

/// Checks that span the whole request (after every field is known).
std::optional<api_error> finish_checks(const openai_request& r) {
  if (r.stream == false && r.include_usage)
    return bad_field("stream_options", "'stream_options' is only allowed when 'stream' is true");
  return std::nullopt;
}

/// A JSON element as a template value (lists and dicts included).
field_result<engine::chat::value> to_value(element v, std::string_view key) {
  auto val = engine::chat::value_from_json(simdjson::minify(v));
  if (!val) return bad_field(key, "'" + std::string(key) + "': " + val.error().message);
  return std::move(*val);
}

/// One entry of "messages": role, content (a string, a list of text parts, or null) and any other
/// fields (name, tool_calls, tool_call_id, reasoning_content) for the template.
field_result<engine::chat::chat_message> chat_message_of(element v, size_t index) {
  const std::string where = "messages[" + std::to_string(index) + "]";
  simdjson::dom::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS) return bad_field("messages", where + " must be an object");
  engine::chat::chat_message m;
  m.content = engine::chat::value::none();
  engine::chat::dict_t fields;
  bool has_role = false;
  for (auto f : obj) {
    if (f.key == "role") {
      std::string_view role;
      if (f.value.get_string().get(role) != simdjson::SUCCESS || role.empty())
        return bad_field("messages", where + ".role must be a non-empty string");
      m.role = std::string(role);
      has_role = true;
    } else if (f.key == "content") {
      if (f.value.is_null()) continue;
      if (f.value.is_array()) {
        for (element part : f.value.get_array()) {
          std::string_view type, text;
          if (part.at_key("type").get_string().get(type) != simdjson::SUCCESS || type != "text" ||
              part.at_key("text").get_string().get(text) != simdjson::SUCCESS)
            return bad_field("messages", where + ".content: only text parts ({\"type\": \"text\", \"text\": "
                                                 "...}) are supported");
        }
      } else if (!f.value.is_string()) {
        return bad_field("messages", where + ".content must be a string, a list of parts or null");
      }
      TROUPE_TAKE(c, to_value(f.value, "messages"));
      m.content = std::move(c);
    } else {
      TROUPE_TAKE(x, to_value(f.value, "messages"));
      fields.set(std::string(f.key), std::move(x));
    }
  }
  if (!has_role) return bad_field("messages", where + ".role is required");
  if (!fields.entries.empty()) m.fields = engine::chat::value(std::move(fields));
  return m;
}

/// Adds every entry of a JSON object (chat_template_kwargs) to the template's extra variables.
std::optional<api_error> add_kwargs(engine::chat::dict_t& extra, element v) {
  simdjson::dom::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS)
    return bad_field("chat_template_kwargs", "'chat_template_kwargs' must be an object");
  for (auto f : obj) {
    auto val = to_value(f.value, "chat_template_kwargs");
    if (auto* e = std::get_if<api_error>(&val)) return *e;
    extra.set(std::string(f.key), std::move(std::get<0>(val)));
  }
  return std::nullopt;
}

}  // namespace

std::string to_json(const api_error& e) {
  json_writer w;
  w.begin_object().key("error").begin_object();
  w.field("message", e.message).field("type", e.type);
  w.key("param");
  if (e.param.empty()) w.null(); else w.value(e.param);
  w.key("code");
  if (e.code.empty()) w.null(); else w.value(e.code);
  w.end_object().end_object();
  return w.take();
}

api_error bad_field(std::string_view param, std::string message) {
  return api_error{400, std::move(message), "invalid_request_error", std::string(param), ""};
}

api_error from_runtime_error(const troupe::error& e) {
  switch (e.code) {
    case errc::invalid_argument: return api_error{400, e.message, "invalid_request_error"};
    case errc::not_found: return api_error{404, e.message, "invalid_request_error", "", "not_found"};
    case errc::resource_exhausted:
      return api_error{429, e.message, "rate_limit_exceeded", "", "rate_limit_exceeded"};
    case errc::unavailable: return api_error{503, e.message, "service_unavailable", "", "service_unavailable"};
    default: return api_error{500, e.message, "internal_error", "", "internal_error"};
  }
}

parse_result parse_completion_request(std::string_view body) {
  openai_request r;
  r.kind = endpoint::completions;
  bool has_prompt = false;
  auto err = for_each_field(body, [&](std::string_view key, element v) -> std::optional<api_error> {
    auto common = common_field(r, key, v);
    if (auto* e = std::get_if<api_error>(&common)) return *e;
    if (std::get<bool>(common)) return std::nullopt;
    if (key == "prompt") {
      auto ps = prompts(v);
      if (auto* e = std::get_if<api_error>(&ps)) return *e;
      r.prompts = std::move(std::get<0>(ps));
      has_prompt = true;
    } else if (key == "echo") {
      auto b = boolean(v, key);
      if (auto* e = std::get_if<api_error>(&b)) return *e;
      r.echo = std::get<bool>(b);
    } else if (key == "logprobs") {
      auto i = integer_in(v, key, 0, engine::max_logprobs);
      if (auto* e = std::get_if<api_error>(&i)) return *e;
      r.logprobs = int32_t(std::get<int64_t>(i));
    } else if (key == "suffix") {
      return bad_field(key, "'suffix' is not supported");
    }
    return std::nullopt;
  });
  if (err) return *err;
  if (!has_prompt) return bad_field("prompt", "'prompt' is required");
  if (auto e = finish_checks(r)) return *e;
  r.params.logprobs = r.logprobs;
  if (r.echo && r.logprobs >= 0) r.params.prompt_logprobs = r.logprobs;
  return r;
}

parse_result parse_chat_request(std::string_view body) {
  openai_request r;
  r.kind = endpoint::chat;
  bool has_messages = false, want_logprobs = false;
  int32_t top_logprobs = -1;
  engine::chat::dict_t extra;
  auto err = for_each_field(body, [&](std::string_view key, element v) -> std::optional<api_error> {
    auto common = common_field(r, key, v);
    if (auto* e = std::get_if<api_error>(&common)) return *e;
    if (std::get<bool>(common)) return std::nullopt;
    if (key == "messages") {
      simdjson::dom::array arr;
      if (v.get_array().get(arr) != simdjson::SUCCESS || arr.size() == 0)
        return bad_field(key, "'messages' must be a non-empty list of messages");
      size_t i = 0;
      for (element m : arr) {
        auto msg = chat_message_of(m, i++);
        if (auto* e = std::get_if<api_error>(&msg)) return *e;
        r.messages.push_back(std::move(std::get<0>(msg)));
      }
      has_messages = true;
    } else if (key == "logprobs") {
      auto b = boolean(v, key);
      if (auto* e = std::get_if<api_error>(&b)) return *e;
      want_logprobs = std::get<bool>(b);
    } else if (key == "top_logprobs") {
      auto i = integer_in(v, key, 0, engine::max_logprobs);
      if (auto* e = std::get_if<api_error>(&i)) return *e;
      top_logprobs = int32_t(std::get<int64_t>(i));
    } else if (key == "add_generation_prompt" || key == "continue_final_message") {
      auto b = boolean(v, key);
      if (auto* e = std::get_if<api_error>(&b)) return *e;
      (key == "add_generation_prompt" ? r.add_generation_prompt : r.continue_final_message) = std::get<bool>(b);
    } else if (key == "tools" || key == "documents") {
      if (!v.is_array()) return bad_field(key, "'" + std::string(key) + "' must be a list");
      auto val = to_value(v, key);
      if (auto* e = std::get_if<api_error>(&val)) return *e;
      extra.set(std::string(key), std::move(std::get<0>(val)));
    } else if (key == "chat_template_kwargs") {
      if (auto e = add_kwargs(extra, v)) return e;
    } else if (key == "response_format") {
      std::string_view type;
      if (v.at_key("type").get_string().get(type) != simdjson::SUCCESS || type != "text")
        return bad_field(key, "only 'response_format' {\"type\": \"text\"} is supported");
    } else if (key == "echo" || key == "prompt") {
      return bad_field(key, "'" + std::string(key) + "' is not a chat completions field");
    }
    return std::nullopt;
  });
  if (err) return *err;
  if (!has_messages) return bad_field("messages", "'messages' is required");
  if (top_logprobs >= 0 && !want_logprobs)
    return bad_field("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
  if (auto e = finish_checks(r)) return *e;
  if (want_logprobs) r.logprobs = std::max(top_logprobs, 0);
  r.params.logprobs = r.logprobs;
  if (!extra.entries.empty()) r.template_extra = engine::chat::value(std::move(extra));
  return r;
}

std::variant<std::string, api_error> render_chat_prompt(const openai_request& r,
                                                        const engine::chat::chat_template* tmpl,
                                                        const config::tokenizer_settings& settings) {
  if (tmpl == nullptr)
    return api_error{400,
                     "this model has no chat template (tokenizer_config.json has no 'chat_template'); "
                     "use /v1/completions",
                     "invalid_request_error", "messages", "chat_template_missing"};
  const bool continue_final = r.continue_final_message;
  if (continue_final && r.add_generation_prompt)
    return bad_field("continue_final_message",
                     "'continue_final_message' needs 'add_generation_prompt' set to false");
  auto text = engine::chat::apply_chat_template(*tmpl, r.messages, r.add_generation_prompt, settings.bos_token,
                                                settings.eos_token, r.template_extra);
  if (!text) return api_error{400, "chat template: " + text.error().message, "invalid_request_error", "messages"};
  if (!continue_final) return std::move(*text);
  // Continue the last message: cut the rendering right after its content (as vLLM does).
  const auto& last = r.messages.back().content;
  std::string content = last.is_string() ? last.as_string() : std::string();
  const size_t at = content.empty() ? std::string::npos : text->rfind(content);
  if (at == std::string::npos)
    return bad_field("continue_final_message", "the final message's text was not found in the rendered prompt");
  return text->substr(0, at + content.size());
}

}  // namespace troupe::net
