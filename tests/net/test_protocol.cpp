// The OpenAI protocol layer without a server: request parsing and validation, response and chunk shapes,
// JSON escaping, chat rendering and the Prometheus text.
#include <catch2/catch.hpp>

#include <simdjson.h>

#include "net/json_writer.hpp"
#include "net/metrics_text.hpp"
#include "net/protocol.hpp"
#include "net/responses.hpp"
#include "tests/net/fake_runtime.hpp"

using namespace troupe;
using namespace troupe::net;

namespace {

openai_request ok(const parse_result& r) {
  if (const auto* e = std::get_if<api_error>(&r)) FAIL("unexpected error: " << e->message);
  return std::get<openai_request>(r);
}

api_error err(const parse_result& r) {
  REQUIRE(std::holds_alternative<api_error>(r));
  return std::get<api_error>(r);
}

simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& json) {
  simdjson::dom::element e;
  INFO(json);
  REQUIRE(p.parse(json).get(e) == simdjson::SUCCESS);
  return e;
}

std::string str(simdjson::dom::element e, const char* path) {
  std::string_view s;
  REQUIRE(e.at_pointer(path).get_string().get(s) == simdjson::SUCCESS);
  return std::string(s);
}

int64_t num(simdjson::dom::element e, const char* path) {
  int64_t i = 0;
  REQUIRE(e.at_pointer(path).get_int64().get(i) == simdjson::SUCCESS);
  return i;
}

}  // namespace

TEST_CASE("completion requests: every field lands in the runtime's parameters") {
  const auto& r = ok(parse_completion_request(R"({
    "model": "m", "prompt": "Once", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
    "min_p": 0.05, "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
    "logit_bias": {"42": -100, "7": 2.5}, "seed": 1234, "stop": ["\n", "The end"], "n": 3,
    "logprobs": 2, "echo": true, "ignore_eos": true, "stream": true,
    "stream_options": {"include_usage": true}, "user": "someone", "unknown_extra": [1, 2]})"));
  CHECK(r.model == "m");
  REQUIRE(r.prompts.size() == 1);
  CHECK(std::get<std::string>(r.prompts[0]) == "Once");
  const auto& p = r.params;
  CHECK(p.max_tokens == 7);
  CHECK(p.sampling.temperature == 0.5f);
  CHECK(p.sampling.top_p == 0.9f);
  CHECK(p.sampling.top_k == 40);
  CHECK(p.sampling.min_p == 0.05f);
  CHECK(p.sampling.presence_penalty == 0.5f);
  CHECK(p.sampling.frequency_penalty == -0.5f);
  CHECK(p.sampling.repetition_penalty == 1.1f);
  REQUIRE(p.sampling.logit_bias.size() == 2);
  CHECK(p.sampling.logit_bias[0] == std::pair<int32_t, float>{42, -100.0f});
  CHECK(p.sampling.logit_bias[1] == std::pair<int32_t, float>{7, 2.5f});
  CHECK(p.sampling.seed == 1234u);
  CHECK(p.stop == std::vector<std::string>{"\n", "The end"});
  CHECK(p.n == 3);
  CHECK(p.logprobs == 2);
  CHECK(p.prompt_logprobs == 2);  // echo with logprobs scores the prompt too
  CHECK(p.ignore_eos);
  CHECK(r.echo);
  CHECK(r.stream);
  CHECK(r.include_usage);
}

TEST_CASE("completion requests: defaults, nulls and prompt forms") {
  const auto& d = ok(parse_completion_request(R"({"prompt": "x", "temperature": null, "stop": "end"})"));
  CHECK(d.params.max_tokens == 16);
  CHECK(d.params.sampling.temperature == 1.0f);
  CHECK(d.params.stop == std::vector<std::string>{"end"});
  CHECK(d.logprobs == -1);
  CHECK(!d.stream);

  const auto& ids = ok(parse_completion_request(R"({"prompt": [1, 403, 407]})"));
  REQUIRE(ids.prompts.size() == 1);
  CHECK(std::get<std::vector<int32_t>>(ids.prompts[0]) == std::vector<int32_t>{1, 403, 407});

  const auto& batch = ok(parse_completion_request(R"({"prompt": ["a", [5, 6], "b"]})"));
  REQUIRE(batch.prompts.size() == 3);
  CHECK(std::get<std::string>(batch.prompts[2]) == "b");
  CHECK(std::get<std::vector<int32_t>>(batch.prompts[1]) == std::vector<int32_t>{5, 6});
  CHECK(ok(parse_completion_request(R"({"prompt": "x", "max_tokens": 5.0})")).params.max_tokens == 5);
}

TEST_CASE("completion requests: wrong types and ranges are 400s naming the field") {
  struct bad_case {
    const char* body;
    const char* param;
  };
  const bad_case cases[] = {
      {R"({"prompt": "x", "max_tokens": "ten"})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 2.5})", "max_tokens"},
      {R"({"prompt": "x", "temperature": 2.5})", "temperature"},
      {R"({"prompt": "x", "temperature": -1})", "temperature"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "x", "top_p": 0})", "top_p"},
      {R"({"prompt": "x", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "x", "top_k": -2})", "top_k"},
      {R"({"prompt": "x", "min_p": 2})", "min_p"},
      {R"({"prompt": "x", "presence_penalty": 3})", "presence_penalty"},
      {R"({"prompt": "x", "frequency_penalty": -2.5})", "frequency_penalty"},
      {R"({"prompt": "x", "repetition_penalty": 0})", "repetition_penalty"},
      {R"({"prompt": "x", "n": 0})", "n"},
      {R"({"prompt": "x", "n": 129})", "n"},
      {R"({"prompt": "x", "logprobs": 21})", "logprobs"},
      {R"({"prompt": "x", "logprobs": true})", "logprobs"},
      {R"({"prompt": "x", "stop": 5})", "stop"},
      {R"({"prompt": "x", "stop": ["a", 1]})", "stop"},
      {R"({"prompt": "x", "logit_bias": {"abc": 1}})", "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"5": 101}})", "logit_bias"},
      {R"({"prompt": "x", "logit_bias": [1]})", "logit_bias"},
      {R"({"prompt": "x", "seed": "s"})", "seed"},
      {R"({"prompt": "x", "stream": "yes"})", "stream"},
      {R"({"prompt": "x", "echo": 1})", "echo"},
      {R"({"prompt": "x", "model": 5})", "model"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({"prompt": [1, -3]})", "prompt"},
      {R"({"prompt": [[]]})", "prompt"},
      {R"({"prompt": "x", "suffix": "y"})", "suffix"},
      {R"({"prompt": "x", "best_of": 3})", "best_of"},
      {R"({"max_tokens": 3})", "prompt"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    const auto& e = err(parse_completion_request(c.body));
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.param == c.param);
    CHECK(!e.message.empty());
  }
}

TEST_CASE("malformed bodies are 400s") {
  for (const char* body : {"", "{", "not json", "[1, 2]", "\"text\"", "{\"prompt\": \"x\",}"}) {
    INFO(body);
    const auto& e = err(parse_completion_request(body));
    CHECK(e.status == 400);
    CHECK(e.param.empty());
  }
  CHECK(err(parse_chat_request("{\"messages\": ")).status == 400);
}

TEST_CASE("chat requests: messages, logprobs, max_completion_tokens and template options") {
  const auto& r = ok(parse_chat_request(R"({
    "model": "m",
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function"}]},
      {"role": "tool", "content": "42", "tool_call_id": "1"}],
    "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 3,
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "chat_template_kwargs": {"enable_thinking": false}})"));
  REQUIRE(r.messages.size() == 4);
  CHECK(r.messages[0].role == "system");
  CHECK(r.messages[0].content.as_string() == "Be brief.");
  CHECK(r.messages[1].content.is_list());
  CHECK(r.messages[1].content.as_list().size() == 2);
  CHECK(r.messages[2].content.is_none());
  REQUIRE(r.messages[2].fields.is_dict());
  CHECK(r.messages[2].fields.as_dict().find("tool_calls") != nullptr);
  CHECK(r.messages[3].fields.as_dict().find("tool_call_id")->as_string() == "1");
  CHECK(r.params.max_tokens == 9);
  CHECK(r.max_tokens_given);
  CHECK(r.logprobs == 3);
  CHECK(r.params.logprobs == 3);
  REQUIRE(r.template_extra.is_dict());
  CHECK(r.template_extra.as_dict().find("tools")->is_list());
  CHECK(r.template_extra.as_dict().find("enable_thinking")->as_bool() == false);

  const auto& plain = ok(parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}]})"));
  CHECK(!plain.max_tokens_given);
  CHECK(plain.logprobs == -1);
  CHECK(ok(parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})"))
            .logprobs == 0);
}

TEST_CASE("chat requests: bad messages and options are 400s naming the field") {
  struct bad_case {
    const char* body;
    const char* param;
  };
  const bad_case cases[] = {
      {R"({})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [{"content": "x"}]})", "messages"},
      {R"({"messages": [{"role": 3, "content": "x"}]})", "messages"},
      {R"({"messages": [{"role": "user", "content": 3}]})", "messages"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})", "messages"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 30})",
       "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 2})", "logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -1})",
       "max_completion_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})",
       "response_format"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": {}})", "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "prompt": "y"})", "prompt"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    const auto& e = err(parse_chat_request(c.body));
    CHECK(e.status == 400);
    CHECK(e.param == c.param);
  }
}

TEST_CASE("chat prompts render with the model's template, and none is a clear 400") {
  const auto& r = ok(parse_chat_request(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})"));
  config::tokenizer_settings settings;
  settings.bos_token = "<s>";
  auto none = render_chat_prompt(r, nullptr, settings);
  REQUIRE(std::holds_alternative<api_error>(none));
  CHECK(std::get<api_error>(none).status == 400);
  CHECK(std::get<api_error>(none).code == "chat_template_missing");
  CHECK(std::get<api_error>(none).message.find("no chat template") != std::string::npos);

  auto tmpl = engine::chat::chat_template::parse(
      "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
      "{% if add_generation_prompt %}<|assistant|>{% endif %}");
  REQUIRE(tmpl);
  auto text = render_chat_prompt(r, &*tmpl, settings);
  REQUIRE(std::holds_alternative<std::string>(text));
  CHECK(std::get<std::string>(text) == "<s><|system|>S\n<|user|>Hi\n<|assistant|>");

  auto cont = ok(parse_chat_request(R"({"messages": [{"role": "user", "content": "Q"},
      {"role": "assistant", "content": "Once upon"}], "add_generation_prompt": false,
      "continue_final_message": true})"));
  auto continued = render_chat_prompt(cont, &*tmpl, settings);
  REQUIRE(std::holds_alternative<std::string>(continued));
  CHECK(std::get<std::string>(continued) == "<s><|user|>Q\n<|assistant|>Once upon");

  auto raising = engine::chat::chat_template::parse("{{ raise_exception('only user and assistant roles') }}");
  REQUIRE(raising);
  auto failed = render_chat_prompt(r, &*raising, settings);
  REQUIRE(std::holds_alternative<api_error>(failed));
  CHECK(std::get<api_error>(failed).status == 400);
  CHECK(std::get<api_error>(failed).message.find("only user and assistant roles") != std::string::npos);
}

TEST_CASE("errors: OpenAI's shape and the runtime's kinds mapped to status codes") {
  simdjson::dom::parser p;
  auto e = parse(p, to_json(bad_field("top_p", "'top_p' must be > 0")));
  CHECK(str(e, "/error/message") == "'top_p' must be > 0");
  CHECK(str(e, "/error/type") == "invalid_request_error");
  CHECK(str(e, "/error/param") == "top_p");
  CHECK(e.at_pointer("/error/code").is_null());
  CHECK(from_runtime_error(make_error_code(errc::invalid_argument, "x")).status == 400);
  CHECK(from_runtime_error(make_error_code(errc::not_found, "x")).status == 404);
  CHECK(from_runtime_error(make_error_code(errc::resource_exhausted, "x")).status == 429);
  CHECK(from_runtime_error(make_error_code(errc::unavailable, "x")).status == 503);
  CHECK(from_runtime_error(make_error("x")).status == 500);
}

TEST_CASE("json_writer escapes control characters and replaces invalid UTF-8") {
  CHECK(json_quote("a\"b\\c\n\t\x01") == "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  CHECK(json_quote("caf\xC3\xA9 \xF0\x9F\x98\x80") == "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
  CHECK(json_quote("\xE2\x82") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");  // a cut 3-byte character
  CHECK(json_quote("\xC0\xAF") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");  // overlong
  CHECK(json_quote("\xED\xA0\x80") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // a surrogate
  json_writer w;
  w.begin_object().field("a", int64_t(1)).field("b", 0.5).field("c", -std::numeric_limits<double>::infinity());
  w.key("d").begin_array().value(true).null().value(2.0f).end_array().end_object();
  CHECK(w.str() == R"({"a":1,"b":0.5,"c":-9999.0,"d":[true,null,2.0]})");
}

TEST_CASE("responses: completion and chat bodies in OpenAI's shapes") {
  auto tok = *engine::tokenizer::load(TROUPE_DEFAULT_MODEL);
  simdjson::dom::parser p;
  response_meta m{endpoint::completions, make_response_id(endpoint::completions), 1700000000, "stories260k"};
  CHECK(m.id.rfind("cmpl-", 0) == 0);
  CHECK(m.id.size() == 5 + 24);
  CHECK(make_response_id(endpoint::chat).rfind("chatcmpl-", 0) == 0);
  CHECK(make_response_id(endpoint::chat) != make_response_id(endpoint::chat));
  std::vector<choice_result> choices(2);
  choices[0].text = "Once upon";
  choices[0].finish_reason = "length";
  choices[1].text = "A cat";
  choices[1].finish_reason = "stop";
  auto body = parse(p, response_body(m, choices, {5, 4}, -1, tok));
  CHECK(str(body, "/id") == m.id);
  CHECK(str(body, "/object") == "text_completion");
  CHECK(num(body, "/created") == 1700000000);
  CHECK(str(body, "/model") == "stories260k");
  CHECK(str(body, "/system_fingerprint") == std::string(system_fingerprint()));
  CHECK(num(body, "/choices/1/index") == 1);
  CHECK(str(body, "/choices/0/text") == "Once upon");
  CHECK(body.at_pointer("/choices/0/logprobs").is_null());
  CHECK(str(body, "/choices/1/finish_reason") == "stop");
  CHECK(num(body, "/usage/prompt_tokens") == 5);
  CHECK(num(body, "/usage/completion_tokens") == 4);
  CHECK(num(body, "/usage/total_tokens") == 9);

  m.kind = endpoint::chat;
  choices.resize(1);
  // Token texts read as they do inside text: "▁there" is " there" (decoding it alone drops the space).
  const int32_t there = *tok.token_to_id("\xE2\x96\x81there");
  choices[0].logprobs = {{{there, -0.25f}, 1, {{there, -0.25f}, {407, -2.0f}}}};
  auto chat = parse(p, response_body(m, choices, {5, 1}, 2, tok));
  CHECK(str(chat, "/object") == "chat.completion");
  CHECK(str(chat, "/choices/0/message/role") == "assistant");
  CHECK(str(chat, "/choices/0/message/content") == "Once upon");
  CHECK(str(chat, "/choices/0/logprobs/content/0/token") == " there");
  double lp;
  REQUIRE(chat.at_pointer("/choices/0/logprobs/content/0/logprob").get_double().get(lp) == simdjson::SUCCESS);
  CHECK(lp == -0.25);
  CHECK(chat.at_pointer("/choices/0/logprobs/content/0/top_logprobs").get_array().size() == 2);
  CHECK(chat.at_pointer("/choices/0/logprobs/content/0/bytes").get_array().size() == 6);

  m.kind = endpoint::completions;
  choices[0].no_logprob = {true};
  choices[0].logprobs.push_back({{407, -1.5f}, 3, {{403, -0.1f}}});
  choices[0].no_logprob.push_back(false);
  auto lps = parse(p, response_body(m, choices, {5, 1}, 1, tok));
  CHECK(lps.at_pointer("/choices/0/logprobs/token_logprobs/0").is_null());
  REQUIRE(lps.at_pointer("/choices/0/logprobs/token_logprobs/1").get_double().get(lp) == simdjson::SUCCESS);
  CHECK(lp == -1.5);
  CHECK(lps.at_pointer("/choices/0/logprobs/top_logprobs/0").is_null());
  CHECK(lps.at_pointer("/choices/0/logprobs/top_logprobs/1").get_object().size() == 1);
  CHECK(num(lps, "/choices/0/logprobs/text_offset/0") == 0);
  CHECK(str(lps, "/choices/0/logprobs/tokens/0") == " there");
  CHECK(num(lps, "/choices/0/logprobs/text_offset/1") == 6);
}

TEST_CASE("responses: stream chunks and the usage chunk") {
  auto tok = *engine::tokenizer::load(TROUPE_DEFAULT_MODEL);
  simdjson::dom::parser p;
  response_meta m{endpoint::chat, "chatcmpl-x", 1, "m"};
  auto first = parse(p, chunk_json(m, chunk_piece{0, "", true}, -1, tok, true));
  CHECK(str(first, "/object") == "chat.completion.chunk");
  CHECK(str(first, "/choices/0/delta/role") == "assistant");
  CHECK(str(first, "/choices/0/delta/content") == "");
  CHECK(first.at_pointer("/choices/0/finish_reason").is_null());
  CHECK(first.at_pointer("/usage").is_null());
  auto last = parse(p, chunk_json(m, chunk_piece{2, "", false, nullptr, 0, "stop"}, -1, tok, false));
  CHECK(last.at_pointer("/choices/0/delta").get_object().size() == 0);
  CHECK(num(last, "/choices/0/index") == 2);
  CHECK(str(last, "/choices/0/finish_reason") == "stop");
  CHECK(last.at_pointer("/usage").error() == simdjson::NO_SUCH_FIELD);
  auto usage = parse(p, usage_chunk_json(m, {3, 4}));
  CHECK(usage.at_pointer("/choices").get_array().size() == 0);
  CHECK(num(usage, "/usage/total_tokens") == 7);
  m.kind = endpoint::completions;
  auto text = parse(p, chunk_json(m, chunk_piece{0, " cat"}, -1, tok, false));
  CHECK(str(text, "/object") == "text_completion");
  CHECK(str(text, "/choices/0/text") == " cat");
  CHECK(sse_event("{}") == "data: {}\n\n");
}

TEST_CASE("metrics: Prometheus text with gauges, counters by reason, cumulative histograms") {
  runtime_metrics m;
  m.requests_running = 3;
  m.requests_waiting = 1;
  m.requests_finished = {{"stop", 5}, {"abort", 2}};
  m.kv_blocks_used = 7;
  m.kv_blocks_total = 64;
  m.prefix_cache_queries = 100;
  m.prefix_cache_hits = 25;
  m.time_to_first_token = {{0.1, 1.0}, {2, 1, 1}, 2.5, 4};
  m.mailbox_depth = {{"scheduler", 4}, {"executor-0", 1}};
  const std::string t = prometheus_text(m);
  const auto has = [&](const std::string& line) {
    INFO(line);
    CHECK(t.find("\n" + line + "\n") != std::string::npos);
  };
  has("troupe_requests_running 3");
  has("troupe_requests_waiting 1");
  has("troupe_requests_finished_total{reason=\"stop\"} 5");
  has("troupe_requests_finished_total{reason=\"abort\"} 2");
  has("troupe_requests_finished_total{reason=\"length\"} 0");
  has("troupe_kv_blocks_used 7");
  has("troupe_kv_blocks_total 64");
  has("troupe_prefix_cache_hit_rate 0.25");
  has("troupe_time_to_first_token_seconds_bucket{le=\"0.1\"} 2");
  has("troupe_time_to_first_token_seconds_bucket{le=\"1\"} 3");
  has("troupe_time_to_first_token_seconds_bucket{le=\"+Inf\"} 4");
  has("troupe_time_to_first_token_seconds_sum 2.5");
  has("troupe_time_to_first_token_seconds_count 4");
  has("troupe_mailbox_depth{actor=\"scheduler\"} 4");
  has("# TYPE troupe_inter_token_latency_seconds histogram");
  CHECK(t.rfind("# HELP troupe_requests_running", 0) == 0);
}
