// The HTTP server: routes, API-key checks, errors for unknown routes and large bodies, health, metrics,
// the model list; the generation routes are in generate.cpp.
#include "net/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <optional>
#include <thread>

#include <httplib.h>

#include "net/generate.hpp"
#include "net/http_util.hpp"
#include "net/metrics_text.hpp"
#include "net/responses.hpp"

namespace troupe::net {

namespace {

/// cpp-httplib's server with a deeper listen backlog (the library's is 5, too few for bursts of
/// thousands of connections).
class backlog_server : public httplib::Server {
 public:
  void deepen_backlog(int backlog) {
    const auto sock = svr_sock_.load();
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

bool is_api_path(const std::string& path) { return path.rfind("/v1/", 0) == 0; }

/// A constant-time comparison, so that response times do not reveal how much of a key matched.
bool same_key(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= uint8_t(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

}  // namespace

struct http_server::impl {
  server_options opt;
  backlog_server svr;
  std::thread thread;
  std::atomic<runtime*> rt{nullptr};
  std::atomic<bool> draining{false};
  std::atomic<int64_t> in_flight{0};
  std::atomic<bool> listen_ended{false};
  std::optional<engine::chat::chat_template> tmpl;
  generate_context gctx;
  int port = 0;
  int64_t created = int64_t(std::time(nullptr));

  explicit impl(server_options o) : opt(std::move(o)) {
    gctx.draining = &draining;
    gctx.in_flight = &in_flight;
    gctx.retry_after_s = opt.retry_after_s;
    size_t threads = size_t(std::max(opt.http_threads, 8));
    // A pool thread that cannot be created ends the process: stay well inside the process limit.
    rlimit procs{};
    if (getrlimit(RLIMIT_NPROC, &procs) == 0 && procs.rlim_cur != RLIM_INFINITY)
      threads = std::max<size_t>(8, std::min<size_t>(threads, size_t(procs.rlim_cur / 2)));
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    svr.set_payload_max_length(opt.max_body_bytes);
    svr.set_keep_alive_timeout(opt.keep_alive_timeout_s);
    svr.set_keep_alive_max_count(size_t(std::max(opt.keep_alive_max_count, 1)));
    svr.set_read_timeout(opt.read_timeout_s, 0);
    svr.set_write_timeout(opt.write_timeout_s, 0);
    svr.set_tcp_nodelay(true);
    // SO_REUSEADDR only: the library's default adds SO_REUSEPORT, which lets a second server bind the
    // same port and silently take half of the connections.
    // TCP_DEFER_ACCEPT: a connection reaches accept() once its request bytes have arrived. The
    // library gives every connection, its first request included, only the keep-alive timeout to
    // start a request; a client slow to write after connecting (1,000 opening at once on a loaded
    // machine) was hung up on without an answer.
    const int defer_s = std::max(opt.read_timeout_s, 1);
    svr.set_socket_options([defer_s](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
#ifdef TCP_DEFER_ACCEPT
      setsockopt(sock, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s);
#endif
    });
    routes();
  }

  void routes();
  httplib::Server::HandlerResponse pre_route(const httplib::Request& req, httplib::Response& res);
};

httplib::Server::HandlerResponse http_server::impl::pre_route(const httplib::Request& req,
                                                             httplib::Response& res) {
  using hr = httplib::Server::HandlerResponse;
  if (!is_api_path(req.path)) return hr::Unhandled;
  if (!opt.api_key.empty()) {
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) != 0 || !same_key(auth.substr(prefix.size()), opt.api_key)) {
      write_error(res, api_error{401,
                                 auth.empty() ? "missing API key: send 'Authorization: Bearer <key>'"
                                              : "incorrect API key",
                                 "authentication_error", "", "invalid_api_key"});
      return hr::Handled;
    }
  }
  if (rt.load() == nullptr) {
    write_error(res, api_error{503, "the model is still loading", "service_unavailable", "", "loading"});
    return hr::Handled;
  }
  return hr::Unhandled;
}

void http_server::impl::routes() {
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return pre_route(req, res);
  });
  svr.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                    httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    api_error e{res.status, "", "invalid_request_error"};
    if (res.status == 404) {
      e.message = "no route " + req.method + " " + req.path;
      e.code = "not_found";
    } else if (res.status == 413) {
      e.message = "the request body is larger than " + std::to_string(opt.max_body_bytes) + " bytes";
      e.code = "payload_too_large";
    } else if (res.status == 400) {
      e.message = "malformed HTTP request";
    } else {
      e.message = "HTTP status " + std::to_string(res.status);
      e.type = res.status >= 500 ? "internal_error" : "invalid_request_error";
    }
    write_error(res, e, opt.retry_after_s);
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    write_error(res, api_error{500, what, "internal_error", "", "internal_error"});
  });

  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool loading = rt.load() == nullptr;
    if (loading || draining.load() || !rt.load()->ready()) {
      res.status = 503;
      res.set_content(loading ? "{\"status\":\"loading\"}" : "{\"status\":\"draining\"}", "application/json");
      return;
    }
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    runtime* r = rt.load();
    if (r == nullptr) {
      res.status = 503;
      res.set_content("# the model is still loading\n", "text/plain; version=0.0.4");
      return;
    }
    res.set_content(prometheus_text(r->metrics()), "text/plain; version=0.0.4; charset=utf-8");
  });
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    runtime* r = rt.load();
    res.set_content(models_json(r->served_model_name(), created, r->max_model_len()), "application/json");
  });
  svr.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    runtime* r = rt.load();
    const std::string name = req.matches[1];
    if (name != r->served_model_name())
      return write_error(res, api_error{404, "The model `" + name + "` does not exist.", "invalid_request_error",
                                        "model", "model_not_found"});
    res.set_content(model_json(name, created, r->max_model_len()), "application/json");
  });
  svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generate(gctx, endpoint::completions, req, res);
  });
  svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generate(gctx, endpoint::chat, req, res);
  });
}

http_server::http_server(server_options options) : impl_(std::make_unique<impl>(std::move(options))) {}

http_server::~http_server() { stop(); }

expected<int> http_server::bind() {
  auto& s = *impl_;
  if (s.opt.port == 0) {
    s.port = s.svr.bind_to_any_port(s.opt.host);
    if (s.port <= 0) return make_error("cannot bind to ", s.opt.host, " (any port)");
  } else {
    if (!s.svr.bind_to_port(s.opt.host, s.opt.port))
      return make_error("cannot bind to ", s.opt.host, ":", s.opt.port, " (in use, or not an address here)");
    s.port = s.opt.port;
  }
  s.svr.deepen_backlog(s.opt.listen_backlog);
  return s.port;
}

void http_server::start() {
  auto& s = *impl_;
  s.listen_ended = false;
  s.thread = std::thread([&s] {
    s.svr.listen_after_bind();
    s.listen_ended = true;
  });
  // Return once the loop runs: a stop() before that would find nothing to stop, and the loop would
  // then run (and the join in stop() wait) forever.
  while (!s.svr.is_running() && !s.listen_ended) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void http_server::attach(runtime& r) {
  auto& s = *impl_;
  const std::string& source = r.tokenizer_settings().chat_template;
  if (!source.empty()) {
    auto parsed = engine::chat::chat_template::parse(source);
    if (parsed) s.tmpl = std::move(*parsed);
    else s.gctx.chat_template_error = parsed.error().message;
  }
  s.gctx.chat_template = s.tmpl ? &*s.tmpl : nullptr;
  s.gctx.rt = &r;
  s.rt.store(&r);
}

void http_server::begin_drain() { impl_->draining.store(true); }

void http_server::stop() {
  if (!impl_) return;
  impl_->svr.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int http_server::port() const { return impl_->port; }

int64_t http_server::in_flight() const { return impl_->in_flight.load(); }

}  // namespace troupe::net
