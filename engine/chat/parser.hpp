// The chat-template parser: tokens to a syntax tree (the statements and expressions of Jinja that chat
// templates use); anything else is an error naming the line and the construct.
#pragma once

#include <string_view>

#include "config/error.hpp"
#include "engine/chat/ast.hpp"
#include "engine/chat/lexer.hpp"

namespace troupe::engine::chat {

/// Parses a whole template into its top-level statements.
expected<body> parse_template(std::string_view source, const lexer_options& options = {});

}  // namespace troupe::engine::chat
