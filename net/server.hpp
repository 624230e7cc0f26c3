// The OpenAI-compatible HTTP server: cpp-httplib routes over a troupe::runtime, with API-key checks,
// body limits, health, metrics, admission answers (429/503) and graceful draining.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/runtime.hpp"
#include "config/error.hpp"

namespace troupe::net {

/// How the server listens and answers.
struct server_options {
  std::string host = "127.0.0.1";
  int port = 8000;                       ///< 0: any free port (bind() says which)
  std::string api_key;                   ///< non-empty: /v1/* needs "Authorization: Bearer <key>"
  size_t max_body_bytes = size_t{8} << 20;  ///< larger bodies get 413
  int http_threads = 2048;               ///< connection threads: one per open connection (streams included)
  int listen_backlog = 4096;             ///< pending connections the kernel queues
  int retry_after_s = 1;                 ///< Retry-After of a 429
  int keep_alive_timeout_s = 5;          ///< idle keep-alive connections close after this
  int keep_alive_max_count = 1000;       ///< requests per keep-alive connection
  int read_timeout_s = 30;
  int write_timeout_s = 30;
};

/// The server. Until attach() it answers 503 ("loading") to everything but /health and /metrics, which
/// say so too; after begin_drain() it answers 503 to new generation requests while streams in flight
/// finish. Thread-safe.
class http_server {
 public:
  explicit http_server(server_options options);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Binds the address; returns the port (the chosen one when options.port is 0).
  expected<int> bind();
  /// Serves on a thread of its own (after bind()); returns once it accepts connections.
  void start();
  /// Starts answering requests with `rt` (which must outlive the server or the next stop()); parses
  /// the model's chat template once.
  void attach(runtime& rt);
  /// Stops admitting: new generation requests and /health get 503.
  void begin_drain();
  /// Stops listening and waits for the connection threads; requests still streaming are cancelled.
  void stop();

  int port() const;
  /// Generation requests being answered now (non-streamed and streamed).
  int64_t in_flight() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe::net
