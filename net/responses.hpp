// The OpenAI protocol's responses: completion and chat completion bodies, their streamed chunks
// (server-sent events), usage, logprobs, and the model list, in OpenAI's exact shapes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampling/sampler.hpp"
#include "engine/tokenizer/tokenizer.hpp"
#include "net/protocol.hpp"

namespace troupe::net {

/// What every response and chunk of one request repeats.
struct response_meta {
  endpoint kind = endpoint::completions;
  std::string id;       ///< cmpl-... or chatcmpl-...
  int64_t created = 0;  ///< Unix seconds
  std::string model;
};

/// A fresh id with the endpoint's prefix ("cmpl-" or "chatcmpl-") and 24 random hex digits.
std::string make_response_id(endpoint kind);

/// The system_fingerprint every response carries.
std::string_view system_fingerprint();

/// One finished (or, when streamed, partly built) choice.
struct choice_result {
  std::string text;                              ///< output text (completions with echo: prompt first)
  size_t echo_length = 0;                        ///< bytes of text that are the echoed prompt
  int64_t completion_tokens = 0;
  std::vector<engine::logprobs_entry> logprobs;  ///< per token (echoed prompt tokens first, if any)
  std::vector<bool> no_logprob;                  ///< per logprobs entry: write null (the prompt's first token)
  std::string finish_reason;
};

struct usage_counts {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

/// {"prompt_tokens", "completion_tokens", "total_tokens"}.
std::string usage_json(const usage_counts& u);

/// The whole non-streamed response ("text_completion" or "chat.completion"). `logprobs` < 0 writes
/// "logprobs": null.
std::string response_body(const response_meta& m, const std::vector<choice_result>& choices,
                          const usage_counts& usage, int32_t logprobs, const engine::tokenizer& tok);

/// One streamed piece of a choice. Chat: `first` adds the assistant role to the delta; an empty text with a
/// finish reason gives an empty delta. Completions: the text as is. `text_offset` is where this piece
/// starts in the choice's text (completions' logprobs). `usage_null` adds "usage": null.
struct chunk_piece {
  int32_t index = 0;
  std::string_view text;
  bool first = false;
  const std::vector<engine::logprobs_entry>* logprobs = nullptr;  ///< null: "logprobs": null
  size_t text_offset = 0;
  std::string_view finish_reason;  ///< empty: null
};
std::string chunk_json(const response_meta& m, const chunk_piece& piece, int32_t logprobs,
                       const engine::tokenizer& tok, bool usage_null);

/// The last chunk when stream_options.include_usage is set: no choices, the usage.
std::string usage_chunk_json(const response_meta& m, const usage_counts& u);

/// "data: <json>\n\n".
std::string sse_event(std::string_view json);

/// GET /v1/models: {"object": "list", "data": [model]}; one model object for /v1/models/{id}.
std::string model_json(const std::string& name, int64_t created, int64_t max_model_len);
std::string models_json(const std::string& name, int64_t created, int64_t max_model_len);

}  // namespace troupe::net
