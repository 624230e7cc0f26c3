// Pre-tokenizers: pattern splits with Hugging Face's delimiter behaviours, ByteLevel, Metaspace, Digits.
#include "engine/tokenizer/pre_tokenizer.hpp"

#include "engine/tokenizer/unicode.hpp"

namespace troupe::engine::tok {

namespace {

struct segment {
  std::size_t begin, end;
  bool is_match;
};

// Matches of a regex as alternating segments (Hugging Face's Pattern::find_matches for a regex), with
// the onig crate's iteration: empty matches count, except one right where the previous match ended.
// False when the regex engine gave up.
bool regex_segments(const regex& re, std::string_view s, std::vector<segment>& out) {
  std::size_t prev = 0, last_end = 0, b = 0, e = 0;
  bool any = false;
  std::size_t last_match_end = 0;
  while (last_end <= s.size()) {
    int found = re.find(s, last_end, b, e);
    if (found < 0) return false;
    if (found == 0) break;
    if (b == e && any && last_match_end == e) {
      std::size_t n = last_end < s.size() ? unicode::valid_char_len(s, last_end) : 0;
      last_end += n ? n : 1;
      continue;
    }
    last_end = last_match_end = e;
    any = true;
    if (prev != b) out.push_back({prev, b, false});
    out.push_back({b, e, true});
    prev = e;
  }
  if (prev != s.size()) out.push_back({prev, s.size(), false});
  return true;
}

void literal_segments(std::string_view lit, std::string_view s, std::vector<segment>& out) {
  std::size_t prev = 0;
  if (!lit.empty()) {
    for (std::size_t hit = s.find(lit); hit != std::string_view::npos; hit = s.find(lit, prev)) {
      if (prev != hit) out.push_back({prev, hit, false});
      out.push_back({hit, hit + lit.size(), true});
      prev = hit + lit.size();
    }
  }
  if (prev != s.size()) out.push_back({prev, s.size(), false});
}

// Every character for which pred holds is its own match.
template <class Pred>
void char_segments(std::string_view s, Pred pred, std::vector<segment>& out) {
  std::size_t last = 0, i = 0;
  while (i < s.size()) {
    std::size_t b = i;
    char32_t c = unicode::next_char(s, i);
    if (pred(c)) {
      if (last < b) out.push_back({last, b, false});
      out.push_back({b, i, true});
      last = i;
    }
  }
  if (s.size() > last) out.push_back({last, s.size(), false});
}

// Applies a delimiter behaviour to segments (Hugging Face's NormalizedString::split).
std::vector<segment> merge_segments(std::vector<segment> segs, split_behavior how, bool invert) {
  if (invert)
    for (auto& g : segs) g.is_match = !g.is_match;
  std::vector<segment> out;
  out.reserve(segs.size());
  bool prev_match = false;
  switch (how) {
    case split_behavior::isolated:
      return segs;
    case split_behavior::removed:
      for (auto& g : segs)
        if (!g.is_match) out.push_back(g);
      return out;
    case split_behavior::merged_with_previous:
      for (auto& g : segs) {
        if (g.is_match && !prev_match && !out.empty()) out.back().end = g.end;
        else out.push_back({g.begin, g.end, false});
        prev_match = g.is_match;
      }
      return out;
    case split_behavior::merged_with_next:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->is_match && !prev_match && !out.empty()) out.back().begin = it->begin;
        else out.push_back({it->begin, it->end, false});
        prev_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
    case split_behavior::contiguous:
      for (auto& g : segs) {
        if (g.is_match == prev_match && !out.empty()) out.back().end = g.end;
        else out.push_back({g.begin, g.end, false});
        prev_match = g.is_match;
      }
      return out;
  }
  return segs;
}

void push_segments(const word& w, const std::vector<segment>& segs, std::vector<word>& out) {
  for (const auto& g : segs) {
    if (g.end == g.begin) continue;
    out.push_back({w.text.substr(g.begin, g.end - g.begin), w.at_start && g.begin == 0});
  }
}

void replace_spaces(std::string& s, const std::string& rep) {
  if (s.find(' ') == std::string::npos) return;
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    if (c == ' ') out += rep;
    else out += c;
  }
  s = std::move(out);
}

error regex_gave_up(const regex& re) {
  return make_error("the pre-tokenizer regex '", re.pattern(),
                    "' hit PCRE2's match limit on this input (too much backtracking)");
}

}  // namespace

const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

void append_byte_level(std::string& out, std::string_view bytes) {
  const auto& t = byte_to_char();
  for (char c : bytes) unicode::append_utf8(out, t[static_cast<unsigned char>(c)]);
}

std::shared_ptr<const regex> gpt2_regex() {
  static const std::shared_ptr<const regex> re = [] {
    auto r = regex::compile(
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
    TROUPE_CHECK(r.has_value());
    return *r;
  }();
  return re;
}

expected<void> pre_tokenizer::apply(std::vector<word>& words) const {
  if (type == kind::sequence) {
    for (const auto& c : children)
      if (auto r = c.apply(words); !r) return r;
    return {};
  }
  std::vector<word> out;
  out.reserve(words.size() * 2);
  std::vector<segment> segs;
  for (auto& w : words) {
    segs.clear();
    switch (type) {
      case kind::split:
        if (!re) literal_segments(literal, w.text, segs);
        else if (!regex_segments(*re, w.text, segs)) return regex_gave_up(*re);
        push_segments(w, merge_segments(std::move(segs), behavior, invert), out);
        break;
      case kind::digits:
        char_segments(w.text, unicode::is_numeric, segs);
        push_segments(w, merge_segments(std::move(segs), individual_digits ? split_behavior::isolated
                                                                           : split_behavior::contiguous,
                                        false),
                      out);
        break;
      case kind::byte_level: {
        if (add_prefix_space && w.text.rfind(' ', 0) != 0) w.text = ' ' + w.text;
        std::size_t first = out.size();
        if (use_regex) {
          if (!regex_segments(*gpt2_regex(), w.text, segs)) return regex_gave_up(*gpt2_regex());
          push_segments(w, segs, out);
        } else if (!w.text.empty()) {
          out.push_back(std::move(w));
        }
        for (std::size_t k = first; k < out.size(); ++k) {
          std::string mapped;
          mapped.reserve(out[k].text.size() * 2);
          append_byte_level(mapped, out[k].text);
          out[k].text = std::move(mapped);
        }
        break;
      }
      case kind::metaspace: {
        replace_spaces(w.text, replacement);
        bool prepend = scheme == prepend_scheme::always || (scheme == prepend_scheme::first && w.at_start);
        if (prepend && w.text.rfind(replacement, 0) != 0) w.text = replacement + w.text;
        if (split_on_replacement) {
          literal_segments(replacement, w.text, segs);
          // each occurrence of the replacement is its own match, merged with what follows it
          push_segments(w, merge_segments(std::move(segs), split_behavior::merged_with_next, false), out);
        } else if (!w.text.empty()) {
          out.push_back(std::move(w));
        }
        break;
      }
      case kind::sequence:
        break;
    }
  }
  words = std::move(out);
  return {};
}

}  // namespace troupe::engine::tok
