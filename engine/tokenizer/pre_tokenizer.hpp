// Pre-tokenizers of tokenizer.json (Split, ByteLevel, Metaspace, Digits, Sequence): text to words.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/regex.hpp"

namespace troupe::engine::tok {

/// How a split keeps what its pattern matched (Hugging Face's SplitDelimiterBehavior).
enum class split_behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

/// A piece of a pre-tokenised string; at_start marks the piece that begins the original text.
struct word {
  std::string text;
  bool at_start = false;
};

/// One pre-tokenizer; a sequence holds its children in order.
struct pre_tokenizer {
  enum class kind { split, byte_level, metaspace, digits, sequence };
  enum class prepend_scheme { always, first, never };
  kind type = kind::sequence;
  // split: a regex, or a literal when re is null
  std::shared_ptr<const regex> re;
  std::string literal;
  split_behavior behavior = split_behavior::isolated;
  bool invert = false;
  // byte_level
  bool add_prefix_space = false;
  bool use_regex = true;
  // metaspace
  std::string replacement = "\xE2\x96\x81";
  prepend_scheme scheme = prepend_scheme::always;
  bool split_on_replacement = true;
  // digits
  bool individual_digits = false;
  std::vector<pre_tokenizer> children;

  /// Splits and transforms words in place, dropping empty ones, as Hugging Face does; fails only when
  /// the regex engine gives up on pathological input.
  expected<void> apply(std::vector<word>& words) const;
};

/// The GPT-2 pattern that ByteLevel uses when use_regex is on.
std::shared_ptr<const regex> gpt2_regex();

/// GPT-2's byte to character map (printable bytes stand for themselves, the rest move to U+0100...).
const std::array<char32_t, 256>& byte_to_char();

/// Appends the byte-level form of bytes (each byte as its mapped character) to out.
void append_byte_level(std::string& out, std::string_view bytes);

}  // namespace troupe::engine::tok
