// Added-token matching: leftmost-longest by first byte, then HF's single_word, lstrip and rstrip rules.
#include "engine/tokenizer/added_vocabulary.hpp"

#include <algorithm>

#include "engine/tokenizer/unicode.hpp"

namespace troupe::engine::tok {

namespace {

// Character that ends s (valid UTF-8, non-empty).
char32_t last_char(std::string_view s) {
  std::size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return unicode::next_char(s, i);
}

// Offset where the run of whitespace that ends s begins.
std::size_t space_leftmost_at_end(std::string_view s) {
  std::size_t left = s.size();
  while (left > 0) {
    std::size_t i = left - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    std::size_t j = i;
    if (!unicode::is_whitespace(unicode::next_char(s, j))) break;
    left = i;
  }
  return left;
}

// Length of the run of whitespace that starts s.
std::size_t space_rightmost_at_start(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = i;
    if (!unicode::is_whitespace(unicode::next_char(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

void added_matcher::add(const added_token& token, std::string pattern) {
  if (pattern.empty()) return;
  entries_.push_back({std::move(pattern), token});
  auto& bucket = by_first_byte_[static_cast<unsigned char>(entries_.back().pattern[0])];
  bucket.push_back(entries_.size() - 1);
  std::stable_sort(bucket.begin(), bucket.end(), [this](std::size_t a, std::size_t b) {
    return entries_[a].pattern.size() > entries_[b].pattern.size();
  });
}

const added_matcher::entry* added_matcher::match_at(std::string_view s, std::size_t i) const {
  for (std::size_t k : by_first_byte_[static_cast<unsigned char>(s[i])]) {
    const entry& e = entries_[k];
    if (s.size() - i >= e.pattern.size() && s.compare(i, e.pattern.size(), e.pattern) == 0) return &e;
  }
  return nullptr;
}

void added_matcher::split(std::string_view s, std::vector<text_span>& out) const {
  if (s.empty()) return;
  std::size_t start_offset = 0;  // end of the last emitted span
  std::size_t pos = 0;           // where the search resumes: the end of the last match
  while (pos < s.size()) {
    const entry* e = nullptr;
    std::size_t i = pos;
    for (; i < s.size(); ++i) {
      if (by_first_byte_[static_cast<unsigned char>(s[i])].empty()) continue;
      if ((e = match_at(s, i)) != nullptr) break;
    }
    if (e == nullptr) break;
    std::size_t start = i, stop = i + e->pattern.size();
    pos = stop;
    const added_token& t = e->token;
    if (t.single_word) {
      bool start_space = start == 0 || !unicode::is_word_char(last_char(s.substr(0, start)));
      std::size_t k = stop;
      bool stop_space = stop == s.size() || !unicode::is_word_char(unicode::next_char(s, k));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) start = std::max(space_leftmost_at_end(s.substr(0, start)), start_offset);
    if (t.rstrip) stop += space_rightmost_at_start(s.substr(stop));
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, t.id});
    start_offset = stop;
  }
  if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
}

}  // namespace troupe::engine::tok
