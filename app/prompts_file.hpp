// Reads `troupe generate --prompts-file`: one JSON object per line with a prompt and the sampling
// fields of the HTTP API, into engine requests.
#pragma once

#include <filesystem>
#include <string_view>
#include <vector>

#include "config/error.hpp"
#include "engine/core/llm.hpp"

namespace troupe::app {

/// Parses one line: {"prompt": "...", "max_tokens": 16, "temperature": 0.7, ...}. Unknown fields and
/// values of the wrong type are errors naming the field.
expected<engine::llm_request> parse_prompt_line(std::string_view line);

/// Reads every non-blank line of a file; the error names the file and the line number.
expected<std::vector<engine::llm_request>> read_prompts_file(const std::filesystem::path& path);

}  // namespace troupe::app
