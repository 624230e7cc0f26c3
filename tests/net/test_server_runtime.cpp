// The HTTP server over the real runtime on the bundled model (no node needed): answers equal
// engine::llm's for the same seeds, streamed or not; clients that leave free their KV blocks;
// admission limits answer 429 while every 200 is complete.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include <httplib.h>
#include <simdjson.h>

#include "engine/core/llm.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "net/server.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// The real runtime behind a server on 127.0.0.1 (any port).
struct live_server {
  explicit live_server(int32_t max_waiting = 256, int32_t max_num_seqs = 16) {
    std::signal(SIGPIPE, SIG_IGN);
    runtime_options o;
    o.model_dir = TROUPE_DEFAULT_MODEL;
    o.engine.kv_cache_blocks = 256;
    o.engine.max_num_seqs = max_num_seqs;
    o.max_waiting = max_waiting;
    o.cpu_threads = 1;
    auto r = runtime::start(o);
    if (!r) FAIL(r.error().message);
    rt = std::move(*r);
    net::server_options so;
    so.port = 0;
    so.http_threads = 96;
    server = std::make_unique<net::http_server>(so);
    auto p = server->bind();
    REQUIRE(p);
    port = *p;
    server->start();
    server->attach(*rt);
  }
  ~live_server() {
    server->stop();
    server.reset();
    rt.reset();
  }
  httplib::Result post(const std::string& body) const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c.Post("/v1/completions", body, "application/json");
  }

  std::unique_ptr<runtime> rt;
  std::unique_ptr<net::http_server> server;
  int port = 0;
};

/// Every choice's text of a non-streamed body, by index.
std::vector<std::string> texts_of(const std::string& body) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  REQUIRE(p.parse(body).get(e) == simdjson::SUCCESS);
  std::vector<std::string> out;
  for (auto c : e["choices"].get_array()) out.emplace_back(std::string_view(c["text"].get_string()));
  return out;
}

/// Concatenated texts per choice of an SSE body.
std::vector<std::string> streamed_texts(const std::string& body) {
  std::vector<std::string> out;
  simdjson::dom::parser p;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    const std::string data = body.substr(at + 6, end - at - 6);
    at = end;
    if (data == "[DONE]") break;
    simdjson::dom::element e;
    REQUIRE(p.parse(data).get(e) == simdjson::SUCCESS);
    for (auto c : e["choices"].get_array()) {
      const size_t i = size_t(int64_t(c["index"]));
      if (out.size() <= i) out.resize(i + 1);
      out[i] += std::string_view(c["text"].get_string());
    }
  }
  return out;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

}  // namespace

TEST_CASE("HTTP answers equal engine::llm's for the same seeds, streamed or not") {
  struct case_t {
    const char* body;
    engine::llm_request request;
  };
  auto req = [](std::string prompt, int64_t max_tokens, float temperature, std::optional<uint64_t> seed,
                int32_t n, std::vector<std::string> stop) {
    engine::llm_request r;
    r.prompt = std::move(prompt);
    r.params.max_tokens = max_tokens;
    r.params.sampling.temperature = temperature;
    r.params.sampling.seed = seed;
    r.params.n = n;
    r.params.stop = std::move(stop);
    return r;
  };
  const std::vector<case_t> cases = {
      {R"({"prompt": "Once upon a time", "max_tokens": 30, "temperature": 0})",
       req("Once upon a time", 30, 0.0f, std::nullopt, 1, {})},
      {R"({"prompt": "The little bird", "max_tokens": 25, "temperature": 0.9, "seed": 5, "n": 3})",
       req("The little bird", 25, 0.9f, 5, 3, {})},
      {R"({"prompt": "Tom had a big red ball.", "max_tokens": 40, "temperature": 0.8, "seed": 77, "stop": [".", "!"]})",
       req("Tom had a big red ball.", 40, 0.8f, 77, 1, {".", "!"})},
  };
  kernels::cpu::cpu_backend backend(1);
  auto model = engine::llama_model::load(TROUPE_DEFAULT_MODEL, backend);
  REQUIRE(model);
  auto tok = engine::tokenizer::load(TROUPE_DEFAULT_MODEL);
  REQUIRE(tok);
  engine::llm_options lo;
  lo.kv_cache_blocks = 256;
  auto llm = engine::llm::create(**model, *tok, lo);
  REQUIRE(llm);
  std::vector<engine::llm_request> requests;
  for (const auto& c : cases) requests.push_back(c.request);
  const auto expected = (*llm)->generate(requests);

  live_server s;
  for (size_t k = 0; k < cases.size(); ++k) {
    INFO(cases[k].body);
    std::vector<std::string> want;
    for (const auto& sample : expected[k].samples) want.push_back(sample.text);
    auto whole = s.post(cases[k].body);
    REQUIRE(whole);
    REQUIRE(whole->status == 200);
    CHECK(texts_of(whole->body) == want);
    std::string streamed_body = cases[k].body;
    streamed_body.insert(1, R"("stream": true, )");
    auto streamed = s.post(streamed_body);
    REQUIRE(streamed);
    REQUIRE(streamed->status == 200);
    CHECK(streamed_texts(streamed->body) == want);
  }
}

TEST_CASE("clients that leave free their KV blocks at once, streamed or not") {
  live_server s;
  std::vector<std::thread> clients;
  std::atomic<int> cut{0};
  for (int i = 0; i < 10; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", s.port);
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.body = R"({"prompt": "Once upon a time )" + std::to_string(i) +
                 R"(", "max_tokens": 400, "ignore_eos": true, "stream": true})";
      req.set_header("Content-Type", "application/json");
      int chunks = 0;
      req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
      c.send(req);
      if (chunks == 3) ++cut;
    });
  }
  for (int i = 0; i < 5; ++i) {
    clients.emplace_back([&, i] {
      const std::string body = R"({"prompt": "The dog )" + std::to_string(i) +
                               R"(", "max_tokens": 400, "ignore_eos": true})";
      const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                  "application/json\r\nContent-Length: " +
                                  std::to_string(body.size()) + "\r\n\r\n" + body;
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(uint16_t(s.port));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
        (void)!send(fd, request.data(), request.size(), 0);
      std::this_thread::sleep_for(100ms);
      close(fd);
    });
  }
  for (auto& t : clients) t.join();
  CHECK(cut.load() == 10);
  CHECK(eventually([&] {
    const auto m = s.rt->metrics();
    return m.requests_running == 0 && m.requests_waiting == 0 && m.kv_blocks_used == 0;
  }));
  const auto m = s.rt->metrics();
  CHECK(m.requests_finished.count("abort") == 1);
  CHECK(m.requests_finished.at("abort") == 15);
  CHECK(m.requests_finished.count("length") == 0);
  CHECK(eventually([&] { return s.server->in_flight() == 0; }));
}

TEST_CASE("past --max-waiting requests get 429 at once and every 200 is complete") {
  live_server s(2, 1);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0}, busy{0}, other{0};
  for (int i = 0; i < 40; ++i) {
    clients.emplace_back([&, i] {
      auto r = s.post(R"({"prompt": "A cat )" + std::to_string(i) + R"(", "max_tokens": 6, "ignore_eos": true})");
      if (r && r->status == 200 && r->body.find("\"completion_tokens\":6") != std::string::npos) ++ok;
      else if (r && r->status == 429 && r->get_header_value("Retry-After") == "1") ++busy;
      else ++other;
    });
  }
  for (auto& t : clients) t.join();
  CHECK(other.load() == 0);
  CHECK(ok.load() >= 2);
  CHECK(busy.load() > 0);
  CHECK(ok.load() + busy.load() == 40);
}
