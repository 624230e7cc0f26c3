// The OpenAI protocol's requests: parsing and validating /v1/completions and /v1/chat/completions
// bodies (simdjson) into what the runtime takes, and OpenAI-style errors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "actors/runtime.hpp"
#include "engine/chat/chat_template.hpp"
#include "engine/core/request.hpp"

namespace troupe::net {

/// An error as the HTTP layer answers it: status code and OpenAI's {"error": {...}} fields.
struct api_error {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  ///< the offending field; empty: null
  std::string code;   ///< empty: null
};

/// {"error": {"message", "type", "param", "code"}}.
std::string to_json(const api_error& e);

/// An error for a bad field value (400).
api_error bad_field(std::string_view param, std::string message);

/// Maps a runtime error to its status: invalid_argument 400, not_found 404, resource_exhausted 429,
/// unavailable 503, anything else 500.
api_error from_runtime_error(const troupe::error& e);

enum class endpoint { completions, chat };

/// One completion prompt: text, or token ids as they are.
using prompt_input = std::variant<std::string, std::vector<int32_t>>;

/// A parsed and range-checked request of either endpoint.
struct openai_request {
  endpoint kind = endpoint::completions;
  std::string model;                 ///< empty when the client sent none
  bool stream = false;
  bool include_usage = false;        ///< stream_options.include_usage
  bool echo = false;                 ///< completions: the prompt precedes the output
  int32_t logprobs = -1;             ///< top-n logprobs per token (0: the chosen token's only); -1: none
  engine::request_params params;     ///< sampling, max_tokens, stop, n, ignore_eos, logprobs
  bool max_tokens_given = false;     ///< chat defaults to the rest of the context otherwise

  std::vector<prompt_input> prompts;  ///< completions: one or more prompts (a batch)

  std::vector<engine::chat::chat_message> messages;  ///< chat
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  engine::chat::value template_extra;  ///< tools, documents and chat_template_kwargs (a dict or undefined)
};

using parse_result = std::variant<openai_request, api_error>;

/// Parses a /v1/completions body. Unknown fields are ignored (clients send extras such as "user");
/// known fields of the wrong type or out of range are 400s naming the field.
parse_result parse_completion_request(std::string_view body);

/// Parses a /v1/chat/completions body (messages as the chat template takes them).
parse_result parse_chat_request(std::string_view body);

/// Renders a chat request's messages with the model's template; a model without one (`tmpl` null)
/// or a template error is a 400 that says so.
std::variant<std::string, api_error> render_chat_prompt(const openai_request& r,
                                                        const engine::chat::chat_template* tmpl,
                                                        const config::tokenizer_settings& settings);

}  // namespace troupe::net
