// Added tokens of tokenizer.json and how they are found in text before the model runs (HF AddedVocabulary).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::engine::tok {

/// One entry of tokenizer.json's added_tokens.
struct added_token {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool single_word = false;
};

/// A stretch of text: an added token (id >= 0) or text for the normaliser and model (id < 0).
struct text_span {
  std::size_t begin, end;
  int32_t id;
};

/// Finds a set of added tokens in text, leftmost-longest, honouring lstrip, rstrip and single_word.
class added_matcher {
 public:
  /// Adds a token, matched as pattern (its content, or normalised content for normalized tokens).
  void add(const added_token& token, std::string pattern);
  bool empty() const { return entries_.empty(); }
  /// Splits s into spans, appending them to out (HF AddedVocabulary::find_matches; empty s gives none).
  void split(std::string_view s, std::vector<text_span>& out) const;

 private:
  struct entry {
    std::string pattern;
    added_token token;
  };
  // Longest match starting at i, or nullptr.
  const entry* match_at(std::string_view s, std::size_t i) const;
  std::vector<entry> entries_;
  std::array<std::vector<std::size_t>, 256> by_first_byte_;  // indices, longest pattern first
};

}  // namespace troupe::engine::tok
