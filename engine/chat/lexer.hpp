// The chat-template lexer: splits Jinja source into text and tag tokens, applying whitespace control
// (`-`, `+`) and trim_blocks / lstrip_blocks as transformers configures them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/error.hpp"

namespace troupe::engine::chat {

enum class token_kind {
  text,            ///< literal template text (whitespace control already applied)
  variable_begin,  ///< {{
  variable_end,    ///< }}
  block_begin,     ///< {%
  block_end,       ///< %}
  name,
  string,          ///< a string literal, escapes resolved
  integer,
  floating,
  op,              ///< an operator or punctuation: + - * / // % ** ~ == != < > <= >= = . , : | ( ) [ ] { }
  eof,
};

struct token {
  token_kind kind;
  std::string text;
  int line = 1;
};

/// Options of the Jinja environment; transformers renders chat templates with both on.
struct lexer_options {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

/// Tokenizes a template. Errors name the line (unterminated tags, strings or comments, bad characters).
expected<std::vector<token>> tokenize(std::string_view source, const lexer_options& options = {});

}  // namespace troupe::engine::chat
