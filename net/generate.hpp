// POST /v1/completions and /v1/chat/completions: parse, submit to the runtime, answer in one body or
// as server-sent events; a client that leaves cancels its request.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <httplib.h>

#include "actors/runtime.hpp"
#include "engine/chat/chat_template.hpp"
#include "net/protocol.hpp"

namespace troupe::net {

/// What the generation handlers need from the server.
struct generate_context {
  runtime* rt = nullptr;
  const engine::chat::chat_template* chat_template = nullptr;  ///< null: the model has none
  std::string chat_template_error;        ///< why the model's template could not be parsed
  const std::atomic<bool>* draining = nullptr;
  std::atomic<int64_t>* in_flight = nullptr;
  int retry_after_s = 1;
};

/// Handles one generation request of `kind`.
void handle_generate(const generate_context& ctx, endpoint kind, const httplib::Request& req,
                     httplib::Response& res);

}  // namespace troupe::net
