// The HTTP server over a scripted runtime: routes, status codes, OpenAI shapes over the wire, SSE
// framing, API keys, body limits, admission answers, draining, and cancellation when clients leave.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include <httplib.h>
#include <simdjson.h>

#include "net/server.hpp"
#include "tests/net/fake_runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

const char* const chat_template_text =
    "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}";

/// A server on 127.0.0.1 (any port) over a fake runtime.
struct served {
  explicit served(net::server_options o = {}, std::string tmpl = {}, bool attach = true)
      : rt(TROUPE_DEFAULT_MODEL, std::move(tmpl)) {
    std::signal(SIGPIPE, SIG_IGN);
    o.host = "127.0.0.1";
    o.port = 0;
    o.http_threads = 64;
    server = std::make_unique<net::http_server>(o);
    auto p = server->bind();
    REQUIRE(p);
    port = *p;
    server->start();
    if (attach) server->attach(rt);
  }
  ~served() { server->stop(); }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    return c;
  }

  test::fake_runtime rt;
  std::unique_ptr<net::http_server> server;
  int port = 0;
};

simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& json) {
  simdjson::dom::element e;
  INFO(json);
  REQUIRE(p.parse(json).get(e) == simdjson::SUCCESS);
  return e;
}

std::string str(simdjson::dom::element e, const char* path) {
  std::string_view s;
  INFO(path);
  REQUIRE(e.at_pointer(path).get_string().get(s) == simdjson::SUCCESS);
  return std::string(s);
}

int64_t num(simdjson::dom::element e, const char* path) {
  int64_t i = 0;
  INFO(path);
  REQUIRE(e.at_pointer(path).get_int64().get(i) == simdjson::SUCCESS);
  return i;
}

/// The "data: " payloads of an SSE body, in order.
std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    REQUIRE(end != std::string::npos);
    const std::string event = body.substr(at, end - at);
    REQUIRE(event.rfind("data: ", 0) == 0);
    out.push_back(event.substr(6));
    at = end + 2;
  }
  return out;
}

/// Waits until `pred` holds, up to `limit`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

/// A raw TCP connection to the server that sends `request` and then closes without reading.
void send_and_leave(int port, const std::string& request, std::chrono::milliseconds stay) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(send(fd, request.data(), request.size(), 0) == ssize_t(request.size()));
  std::this_thread::sleep_for(stay);
  close(fd);
}

std::string post_text(const std::string& body) {
  return "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

TEST_CASE("health and metrics: 503 while loading, 200 when ready, 503 while draining") {
  served s({}, {}, false);
  auto c = s.client();
  auto h = c.Get("/health");
  REQUIRE(h);
  CHECK(h->status == 503);
  CHECK(h->body.find("loading") != std::string::npos);
  auto early = c.Post("/v1/completions", R"({"prompt": "x"})", "application/json");
  REQUIRE(early);
  CHECK(early->status == 503);
  s.server->attach(s.rt);
  CHECK(c.Get("/health")->status == 200);
  auto m = c.Get("/metrics");
  REQUIRE(m);
  CHECK(m->status == 200);
  CHECK(m->get_header_value("Content-Type").rfind("text/plain", 0) == 0);
  CHECK(m->body.find("\ntroupe_requests_running 0\n") != std::string::npos);
  CHECK(m->body.find("troupe_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3") != std::string::npos);
  s.server->begin_drain();
  CHECK(c.Get("/health")->status == 503);
  auto late = c.Post("/v1/completions", R"({"prompt": "x"})", "application/json");
  REQUIRE(late);
  CHECK(late->status == 503);
  simdjson::dom::parser p;
  CHECK(str(parse(p, late->body), "/error/code") == "service_unavailable");
}

TEST_CASE("a port in use is an error, not a shared port") {
  served s;
  net::server_options o;
  o.port = s.port;
  net::http_server second(o);
  auto bound = second.bind();
  REQUIRE(!bound);
  CHECK(bound.error().message.find(std::to_string(s.port)) != std::string::npos);
}

TEST_CASE("models list and one model") {
  served s;
  auto c = s.client();
  simdjson::dom::parser p;
  auto list = c.Get("/v1/models");
  REQUIRE(list);
  CHECK(list->status == 200);
  auto l = parse(p, list->body);
  CHECK(str(l, "/object") == "list");
  CHECK(str(l, "/data/0/id") == "stories260k");
  CHECK(str(l, "/data/0/object") == "model");
  CHECK(num(l, "/data/0/max_model_len") == 512);
  CHECK(c.Get("/v1/models/stories260k")->status == 200);
  auto missing = c.Get("/v1/models/gpt-4");
  CHECK(missing->status == 404);
  CHECK(str(parse(p, missing->body), "/error/code") == "model_not_found");
}

TEST_CASE("a completion: OpenAI's body, the parameters the runtime got, usage") {
  served s;
  auto c = s.client();
  auto r = c.Post("/v1/completions",
                  R"({"model": "stories260k", "prompt": "Once upon", "max_tokens": 3, "n": 2, "seed": 9,
                      "temperature": 0.7, "stop": ["x"]})",
                  "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "application/json");
  simdjson::dom::parser p;
  auto b = parse(p, r->body);
  CHECK(str(b, "/id").rfind("cmpl-", 0) == 0);
  CHECK(str(b, "/object") == "text_completion");
  CHECK(str(b, "/model") == "stories260k");
  CHECK(str(b, "/choices/0/text") == " t0 t1 t2");
  CHECK(str(b, "/choices/1/text") == " t0 t1 t2");
  CHECK(num(b, "/choices/1/index") == 1);
  CHECK(str(b, "/choices/0/finish_reason") == "length");
  const auto ids = *s.rt.tokenizer().encode("Once upon", true);
  CHECK(num(b, "/usage/prompt_tokens") == int64_t(ids.size()));
  CHECK(num(b, "/usage/completion_tokens") == 6);
  CHECK(num(b, "/usage/total_tokens") == int64_t(ids.size()) + 6);
  const auto sent = s.rt.last_request();
  CHECK(sent.prompt == "Once upon");
  CHECK(sent.add_special_tokens);
  CHECK(sent.params.n == 2);
  CHECK(sent.params.sampling.seed == 9u);
  CHECK(sent.params.sampling.temperature == 0.7f);
  CHECK(sent.params.stop == std::vector<std::string>{"x"});
}

TEST_CASE("a batch of prompts with echo and logprobs") {
  served s;
  auto c = s.client();
  auto r = c.Post("/v1/completions", R"({"prompt": ["A", [1, 5, 6]], "max_tokens": 2, "echo": true, "logprobs": 1})",
                  "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  simdjson::dom::parser p;
  auto b = parse(p, r->body);
  CHECK(b.at_pointer("/choices").get_array().size() == 2);
  CHECK(str(b, "/choices/0/text") == "A t0 t1");
  const int32_t ids[3] = {1, 5, 6};
  CHECK(str(b, "/choices/1/text") == s.rt.tokenizer().decode(ids) + " t0 t1");
  // Echoed prompt tokens come first: the first has no logprob, the others the prompt's.
  CHECK(b.at_pointer("/choices/1/logprobs/token_logprobs/0").is_null());
  double lp = 0;
  REQUIRE(b.at_pointer("/choices/1/logprobs/token_logprobs/1").get_double().get(lp) == simdjson::SUCCESS);
  CHECK(lp == -1.0);
  REQUIRE(b.at_pointer("/choices/1/logprobs/token_logprobs/3").get_double().get(lp) == simdjson::SUCCESS);
  CHECK(lp == -0.5);
  CHECK(b.at_pointer("/choices/1/logprobs/tokens").get_array().size() == 5);
  CHECK(b.at_pointer("/choices/1/logprobs/top_logprobs/4").get_object().size() == 1);

  // Streamed, the prompts' chunks interleave; each choice adds up to its own text.
  auto st = c.Post("/v1/completions", R"({"prompt": ["A", "B", "C"], "max_tokens": 2, "n": 2, "stream": true})",
                   "application/json");
  REQUIRE(st);
  std::vector<std::string> texts(6);
  int finished = 0;
  for (const auto& data : sse_data(st->body)) {
    if (data == "[DONE]") break;
    auto e = parse(p, data);
    const auto i = size_t(num(e, "/choices/0/index"));
    REQUIRE(i < texts.size());
    texts[i] += str(e, "/choices/0/text");
    if (!e.at_pointer("/choices/0/finish_reason").is_null()) ++finished;
  }
  CHECK(texts == std::vector<std::string>(6, " t0 t1"));
  CHECK(finished == 6);
}

TEST_CASE("streamed completions: SSE chunks, finish, usage, [DONE]") {
  served s;
  auto c = s.client();
  auto r = c.Post("/v1/completions",
                  R"({"prompt": "Once", "max_tokens": 3, "stream": true, "stream_options": {"include_usage": true}})",
                  "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "text/event-stream");
  const auto events = sse_data(r->body);
  REQUIRE(events.size() == 5);
  CHECK(events.back() == "[DONE]");
  simdjson::dom::parser p;
  std::string text;
  std::string id;
  for (size_t i = 0; i < 3; ++i) {
    auto e = parse(p, events[i]);
    CHECK(str(e, "/object") == "text_completion");
    if (i == 0) id = str(e, "/id");
    CHECK(str(e, "/id") == id);
    CHECK(e.at_pointer("/usage").is_null());
    text += str(e, "/choices/0/text");
    if (i < 2) CHECK(e.at_pointer("/choices/0/finish_reason").is_null());
  }
  CHECK(text == " t0 t1 t2");
  CHECK(str(parse(p, events[2]), "/choices/0/finish_reason") == "length");
  auto usage = parse(p, events[3]);
  CHECK(usage.at_pointer("/choices").get_array().size() == 0);
  CHECK(num(usage, "/usage/completion_tokens") == 3);
}

TEST_CASE("chat: the template renders the prompt, deltas stream, no template is a 400") {
  served s({}, chat_template_text);
  auto c = s.client();
  auto r = c.Post("/v1/chat/completions",
                  R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})", "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  simdjson::dom::parser p;
  auto b = parse(p, r->body);
  CHECK(str(b, "/id").rfind("chatcmpl-", 0) == 0);
  CHECK(str(b, "/object") == "chat.completion");
  CHECK(str(b, "/choices/0/message/role") == "assistant");
  CHECK(str(b, "/choices/0/message/content") == " t0 t1");
  auto sent = s.rt.last_request();
  CHECK(sent.prompt == "<s>[user] Hi\n[assistant]");
  CHECK(!sent.add_special_tokens);

  // Without max_tokens the request may use the rest of the context: the prompt goes as ids.
  REQUIRE(c.Post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hi"}]})", "application/json"));
  sent = s.rt.last_request();
  const auto ids = *s.rt.tokenizer().encode("<s>[user] Hi\n[assistant]", false);
  CHECK(sent.prompt_ids == ids);
  CHECK(sent.params.max_tokens == 512 - int64_t(ids.size()));

  auto st = c.Post("/v1/chat/completions",
                   R"({"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 2, "stream": true})",
                   "application/json");
  REQUIRE(st);
  const auto events = sse_data(st->body);
  REQUIRE(events.size() == 4);
  auto first = parse(p, events[0]);
  CHECK(str(first, "/object") == "chat.completion.chunk");
  CHECK(str(first, "/choices/0/delta/role") == "assistant");
  CHECK(str(parse(p, events[1]), "/choices/0/delta/content") == " t0");
  auto last = parse(p, events[2]);
  CHECK(str(last, "/choices/0/delta/content") == " t1");
  CHECK(str(last, "/choices/0/finish_reason") == "length");
  CHECK(events[3] == "[DONE]");

  served plain;
  auto none = plain.client().Post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hi"}]})",
                                  "application/json");
  REQUIRE(none);
  CHECK(none->status == 400);
  CHECK(str(parse(p, none->body), "/error/code") == "chat_template_missing");
}

TEST_CASE("errors: 400, 401, 404, 413, 429 with Retry-After, 500 from a failed request") {
  net::server_options o;
  o.api_key = "sekret";
  o.max_body_bytes = 4096;
  served s(o);
  auto c = s.client();
  simdjson::dom::parser p;
  const httplib::Headers auth = {{"Authorization", "Bearer sekret"}};

  auto no_key = c.Post("/v1/completions", R"({"prompt": "x"})", "application/json");
  REQUIRE(no_key);
  CHECK(no_key->status == 401);
  CHECK(str(parse(p, no_key->body), "/error/type") == "authentication_error");
  auto wrong_key = c.Post("/v1/completions", {{"Authorization", "Bearer nope"}}, R"({"prompt": "x"})",
                          "application/json");
  CHECK(wrong_key->status == 401);
  CHECK(c.Get("/v1/models", auth)->status == 200);
  CHECK(c.Get("/health")->status == 200);  // health needs no key

  auto malformed = c.Post("/v1/completions", auth, R"({"prompt": )", "application/json");
  CHECK(malformed->status == 400);
  CHECK(str(parse(p, malformed->body), "/error/type") == "invalid_request_error");
  auto range = c.Post("/v1/completions", auth, R"({"prompt": "x", "temperature": 9})", "application/json");
  CHECK(range->status == 400);
  CHECK(str(parse(p, range->body), "/error/param") == "temperature");
  auto bias = c.Post("/v1/completions", auth, R"({"prompt": "x", "logit_bias": {"99999": 1}})", "application/json");
  CHECK(bias->status == 400);
  auto model = c.Post("/v1/completions", auth, R"({"prompt": "x", "model": "gpt-4"})", "application/json");
  CHECK(model->status == 404);
  CHECK(str(parse(p, model->body), "/error/code") == "model_not_found");
  std::string ids = "1";
  for (int i = 0; i < 600; ++i) ids += ",1";
  auto too_long = c.Post("/v1/completions", auth, R"({"prompt": [)" + ids + "]}", "application/json");
  CHECK(too_long->status == 400);
  INFO(too_long->body);
  CHECK(parse(p, too_long->body).at_pointer("/error/message").get_string().value().find("max_model_len") !=
        std::string_view::npos);
  auto route = c.Get("/v1/nothing", auth);
  CHECK(route->status == 404);
  CHECK(str(parse(p, route->body), "/error/code") == "not_found");
  auto big = c.Post("/v1/completions", auth, "{\"prompt\": \"" + std::string(8000, 'a') + "\"}", "application/json");
  REQUIRE(big);
  CHECK(big->status == 413);
  CHECK(str(parse(p, big->body), "/error/code") == "payload_too_large");

  s.rt.reject = errc::resource_exhausted;
  auto busy = c.Post("/v1/completions", auth, R"({"prompt": "x"})", "application/json");
  CHECK(busy->status == 429);
  CHECK(busy->get_header_value("Retry-After") == "1");
  CHECK(str(parse(p, busy->body), "/error/type") == "rate_limit_exceeded");
  s.rt.reject = errc::unavailable;
  CHECK(c.Post("/v1/completions", auth, R"({"prompt": "x"})", "application/json")->status == 503);
  s.rt.reject = errc::unspecified;

  s.rt.fail_message = "the executor has failed";
  auto failed = c.Post("/v1/completions", auth, R"({"prompt": "x"})", "application/json");
  CHECK(failed->status == 500);
  CHECK(str(parse(p, failed->body), "/error/message") == "the executor has failed");
  auto failed_stream = c.Post("/v1/completions", auth, R"({"prompt": "x", "stream": true})", "application/json");
  const auto events = sse_data(failed_stream->body);
  REQUIRE(events.size() == 2);
  CHECK(str(parse(p, events[0]), "/error/message") == "the executor has failed");
  CHECK(events[1] == "[DONE]");
  s.rt.fail_message.clear();

  // The server is still fine.
  CHECK(c.Post("/v1/completions", auth, R"({"prompt": "x", "max_tokens": 1})", "application/json")->status == 200);
}

TEST_CASE("a client that leaves cancels its request, streaming or not") {
  served s;
  s.rt.pace = 50ms;
  // Streaming: read a few chunks, then close the connection.
  {
    httplib::Client c("127.0.0.1", s.port);
    int chunks = 0;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = R"({"prompt": "x", "max_tokens": 1000, "stream": true})";
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
    c.send(req);
    CHECK(chunks == 3);
  }
  CHECK(eventually([&] { return s.rt.cancelled.load() >= 1; }));
  // Not streaming: send the request and hang up before the answer.
  send_and_leave(s.port, post_text(R"({"prompt": "x", "max_tokens": 1000})"), 200ms);
  CHECK(eventually([&] { return s.rt.cancelled.load() >= 2 && s.rt.running.load() == 0; }));
  CHECK(eventually([&] { return s.server->in_flight() == 0; }));
}

TEST_CASE("many concurrent streams are all served") {
  net::server_options o;
  served s(o);
  s.rt.pace = 20ms;
  constexpr int clients = 48;  // within the test server's 64 threads
  std::vector<std::thread> threads;
  std::atomic<int> complete{0};
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      httplib::Client c("127.0.0.1", s.port);
      c.set_read_timeout(20, 0);
      auto r = c.Post("/v1/completions", R"({"prompt": "x", "max_tokens": 10, "stream": true})", "application/json");
      if (r && r->status == 200 && r->body.find(" t9") != std::string::npos &&
          r->body.find("data: [DONE]\n\n") != std::string::npos)
        ++complete;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(complete.load() == clients);
  CHECK(s.rt.running.load() == 0);
}
