// Decoders: each reproduces Hugging Face's decode_chain for its kind, including lossy UTF-8 handling.
#include "engine/tokenizer/decoder.hpp"

#include <array>
#include <cstdint>

#include "engine/tokenizer/pre_tokenizer.hpp"
#include "engine/tokenizer/unicode.hpp"

namespace troupe::engine::tok {

namespace {

// Inverse of byte_to_char: the byte of each character below U+0200, or -1.
const std::array<int16_t, 0x200>& char_to_byte() {
  static const auto table = [] {
    std::array<int16_t, 0x200> t;
    t.fill(-1);
    const auto& fwd = byte_to_char();
    for (int b = 0; b < 256; ++b) t[fwd[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return table;
}

// The bytes a byte-level token stands for; the token's own bytes when a character is not in the map.
void append_byte_level_bytes(std::string& out, const std::string& token) {
  const auto& map = char_to_byte();
  std::size_t start = out.size();
  std::size_t i = 0;
  while (i < token.size()) {
    char32_t c = unicode::next_char(token, i);
    int b = c < 0x200 ? map[c] : -1;
    if (b < 0) {
      out.resize(start);
      out += token;
      return;
    }
    out += static_cast<char>(b);
  }
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty() || s.find(from) == std::string::npos) return s;
  std::string out;
  std::size_t pos = 0;
  for (std::size_t hit = s.find(from); hit != std::string::npos; hit = s.find(from, pos)) {
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}

void flush_bytes(std::string& bytes, std::vector<std::string>& out) {
  if (bytes.empty()) return;
  if (unicode::is_valid_utf8(bytes)) {
    out.push_back(bytes);
  } else {
    for (std::size_t k = 0; k < bytes.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
  }
  bytes.clear();
}

std::string strip_token(const std::string& t, const std::string& content, std::size_t start,
                        std::size_t stop) {
  std::vector<std::size_t> starts;  // byte offset of each character
  for (std::size_t i = 0; i < t.size(); unicode::next_char(t, i)) starts.push_back(i);
  std::size_t n = starts.size();
  auto char_at = [&](std::size_t k) {
    std::size_t end = k + 1 < n ? starts[k + 1] : t.size();
    return std::string_view(t).substr(starts[k], end - starts[k]);
  };
  std::size_t cut_start = 0;
  for (std::size_t k = 0; k < start && k < n && char_at(k) == content; ++k) cut_start = k + 1;
  std::size_t cut_stop = n;
  for (std::size_t k = 0; k < stop && k < n && char_at(n - k - 1) == content; ++k) cut_stop = n - k - 1;
  if (cut_stop <= cut_start) return {};
  std::size_t b = cut_start < n ? starts[cut_start] : t.size();
  std::size_t e = cut_stop < n ? starts[cut_stop] : t.size();
  return t.substr(b, e - b);
}

}  // namespace

int byte_fallback_value(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

void decoder::decode_chain(std::vector<std::string>& tokens) const {
  switch (type) {
    case kind::sequence:
      for (const auto& c : children) c.decode_chain(tokens);
      return;
    case kind::byte_level: {
      std::string bytes;
      for (const auto& t : tokens) append_byte_level_bytes(bytes, t);
      tokens.assign(1, unicode::from_utf8_lossy(bytes));
      return;
    }
    case kind::byte_fallback: {
      std::vector<std::string> out;
      out.reserve(tokens.size());
      std::string bytes;
      for (auto& t : tokens) {
        int v = byte_fallback_value(t);
        if (v >= 0) {
          bytes += static_cast<char>(v);
          continue;
        }
        flush_bytes(bytes, out);
        out.push_back(std::move(t));
      }
      flush_bytes(bytes, out);
      tokens = std::move(out);
      return;
    }
    case kind::fuse: {
      std::string all;
      for (const auto& t : tokens) all += t;
      tokens.assign(1, std::move(all));
      return;
    }
    case kind::strip:
      for (auto& t : tokens) t = strip_token(t, content, strip_start, strip_stop);
      return;
    case kind::replace:
      for (auto& t : tokens) t = replace_all(t, pattern, content);
      return;
    case kind::metaspace:
      for (std::size_t k = 0; k < tokens.size(); ++k) {
        std::string out;
        const std::string& t = tokens[k];
        std::size_t i = 0;
        while (i < t.size()) {
          std::size_t b = i;
          unicode::next_char(t, i);
          if (t.compare(b, i - b, pattern) == 0) {
            if (k == 0 && prepend) continue;  // Hugging Face drops every one in the first token
            out += ' ';
          } else {
            out.append(t, b, i - b);
          }
        }
        tokens[k] = std::move(out);
      }
      return;
  }
}

}  // namespace troupe::engine::tok
