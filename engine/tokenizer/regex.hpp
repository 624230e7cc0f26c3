// A compiled PCRE2 pattern (UTF + UCP, JIT where available) with Oniguruma's \s, for pre-tokenizer splits.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "config/error.hpp"

namespace troupe::engine::tok {

/// A regular expression as Hugging Face's tokenizers (Oniguruma) reads it; thread-safe to use.
class regex {
 public:
  /// Compiles pattern; the error quotes it and PCRE2's message.
  static expected<std::shared_ptr<const regex>> compile(std::string_view pattern);
  ~regex();
  regex(const regex&) = delete;
  regex& operator=(const regex&) = delete;

  /// Finds the leftmost match in s at or after from (valid UTF-8): 1 when found, 0 when there is none,
  /// -1 when PCRE2 gave up (its match or depth limit, on pathological input).
  int find(std::string_view s, std::size_t from, std::size_t& begin, std::size_t& end) const;

  const std::string& pattern() const { return pattern_; }

 private:
  regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

/// Rewrites \s and \S to also cover U+0085, as Oniguruma's Unicode \s (White_Space) does.
std::string onig_to_pcre2(std::string_view pattern);

}  // namespace troupe::engine::tok
