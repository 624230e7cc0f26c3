// Chat templates: a model's Jinja2 `chat_template` parsed once and rendered for each conversation,
// with the subset of Jinja that real templates use, matching transformers' rendering.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.hpp"
#include "config/model_config.hpp"
#include "engine/chat/value.hpp"

namespace troupe::engine::chat {

struct stmt;

/// One message of a conversation, as the HTTP layer hands it over.
struct chat_message {
  std::string role;
  /// A string, a list of parts ({"type": "text", "text": ...}), none (e.g. an assistant tool call),
  /// or undefined: then the message has no "content" key at all.
  value content;
  /// More fields the template may read (tool_calls, tool_call_id, name, reasoning_content), as a dict;
  /// undefined when there are none.
  value fields;
};

/// A parsed chat template. Cheap to share: rendering does not modify it.
class chat_template {
 public:
  /// Parses Jinja source (with transformers' trim_blocks and lstrip_blocks). Errors name the line
  /// and the construct.
  static expected<chat_template> parse(std::string_view source);

  /// Renders with the given variables (a dict). An error from the template's raise_exception() is
  /// its message as is; other errors start with "line N: ".
  expected<std::string> render(const value& context) const;

  /// Whether the template takes a message's content as a list of parts, OpenAI style: it loops over
  /// `content`, subscripts it with an integer or filters it with selectattr/map/select (as vLLM
  /// detects it). Otherwise text parts are joined with "\n" into one string before rendering.
  bool takes_content_parts() const { return content_parts_; }

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<stmt>>> body_;
  bool content_parts_ = false;
};

/// Builds the context from messages and options and renders it (the HTTP layer calls this). As
/// transformers does, `tools` and `documents` are none unless `extra` (a dict, or undefined) sets them;
/// other entries of `extra` (enable_thinking, date_string, ...) become variables too.
expected<std::string> apply_chat_template(const chat_template& tmpl, const std::vector<chat_message>& messages,
                                          bool add_generation_prompt, const std::string& bos_token,
                                          const std::string& eos_token, const value& extra = {});

/// The model's chat template from its tokenizer settings (tokenizer_config.json or
/// chat_template.jinja). Errors when the model has none (chat requests then get a 400 that says so)
/// or when it does not parse.
expected<chat_template> load_chat_template(const config::tokenizer_settings& settings);

/// Converts OpenAI-style messages (a list of dicts, e.g. value_from_json of a request's "messages")
/// to chat messages: "role" must be a string, "content" a string, a list of parts, null or absent; other
/// keys (tool_calls, tool_call_id, name, reasoning_content) become fields. Errors name the message.
expected<std::vector<chat_message>> messages_from_value(const value& messages);

/// Converts JSON text (a request's tools, tool_calls or arguments) to a template value.
expected<value> value_from_json(std::string_view json);

}  // namespace troupe::engine::chat
