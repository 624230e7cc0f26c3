// Jinja lexing: text between tags with whitespace control, then the tokens inside each tag.
#include "engine/chat/lexer.hpp"

#include <cctype>

namespace troupe::engine::chat {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

class lexer {
 public:
  lexer(std::string src, const lexer_options& o) : s_(std::move(src)), opt_(o) {}

  expected<std::vector<token>> run() {
    bool strip_next = false;  // the previous tag ended with `-`
    bool trim_next = false;   // the previous tag was a block or comment (trim_blocks)
    while (pos_ < s_.size() || !done_) {
      size_t open = find_open(pos_);
      size_t data_start = pos_;
      if (strip_next) {
        while (data_start < open && is_space(s_[data_start])) ++data_start;
      } else if (trim_next && data_start < open && s_[data_start] == '\n') {
        ++data_start;
      }
      bool line_starting = data_start == 0 || s_[data_start - 1] == '\n';
      std::string text = s_.substr(data_start, open - data_start);
      if (open == s_.size()) {
        emit_text(std::move(text));
        done_ = true;
        break;
      }
      char kind = s_[open + 1];
      char sign = open + 2 < s_.size() ? s_[open + 2] : 0;
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (kind != '{' && sign != '+' && opt_.lstrip_blocks) {
        size_t nl = text.rfind('\n');
        size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          bool blank = true;
          for (size_t i = l_pos; i < text.size(); ++i) blank = blank && (text[i] == ' ' || text[i] == '\t');
          if (blank) text.resize(l_pos);
        }
      }
      emit_text(std::move(text));
      pos_ = open + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      line_ = line_at(open);
      expected<char> end_sign = kind == '#' ? comment() : kind == '%' ? block() : variable();
      if (!end_sign) return end_sign.error();
      strip_next = *end_sign == '-';
      trim_next = kind != '{' && *end_sign != '+' && opt_.trim_blocks;
    }
    out_.push_back({token_kind::eof, "", line_at(s_.size())});
    return std::move(out_);
  }

 private:
  size_t find_open(size_t from) const {
    for (size_t i = from; i + 1 < s_.size(); ++i)
      if (s_[i] == '{' && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
    return s_.size();
  }

  int line_at(size_t p) {
    for (; line_pos_ < p && line_pos_ < s_.size(); ++line_pos_)
      if (s_[line_pos_] == '\n') ++line_count_;
    return line_count_;
  }

  void emit_text(std::string text) {
    if (!text.empty()) out_.push_back({token_kind::text, std::move(text), line_});
  }

  expected<char> comment() {
    size_t end = s_.find("#}", pos_);
    if (end == std::string::npos) return make_error("line ", line_, ": unterminated comment");
    char sign = end > pos_ && (s_[end - 1] == '-' || s_[end - 1] == '+') ? s_[end - 1] : 0;
    pos_ = end + 2;
    return sign;
  }

  expected<char> block() {
    // {% raw %} ... {% endraw %}: the content is text.
    size_t p = pos_;
    while (p < s_.size() && is_space(s_[p])) ++p;
    if (s_.compare(p, 3, "raw") == 0 && (p + 3 >= s_.size() || !std::isalnum((unsigned char)s_[p + 3])))
      return raw(p + 3);
    out_.push_back({token_kind::block_begin, "{%", line_});
    return inside('%');
  }

  expected<char> raw(size_t p) {
    while (p < s_.size() && is_space(s_[p])) ++p;
    char sign = 0;
    if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) sign = s_[p++];
    if (s_.compare(p, 2, "%}") != 0) return make_error("line ", line_, ": expected %} after raw");
    p += 2;
    if (sign == '-') while (p < s_.size() && is_space(s_[p])) ++p;
    else if (sign != '+' && opt_.trim_blocks && p < s_.size() && s_[p] == '\n') ++p;
    for (size_t q = s_.find("{%", p); q != std::string::npos; q = s_.find("{%", q + 2)) {
      size_t r = q + 2;
      bool strip = r < s_.size() && s_[r] == '-';
      if (r < s_.size() && (s_[r] == '-' || s_[r] == '+')) ++r;
      while (r < s_.size() && is_space(s_[r])) ++r;
      if (s_.compare(r, 6, "endraw") != 0) continue;
      std::string text = s_.substr(p, q - p);
      if (strip) while (!text.empty() && is_space(text.back())) text.pop_back();
      emit_text(std::move(text));
      pos_ = r + 6;
      return inside_end('%');
    }
    return make_error("line ", line_, ": unterminated raw block");
  }

  // After the keyword of an endraw tag: only the end marker may follow.
  expected<char> inside_end(char close) {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
    char sign = 0;
    if (pos_ < s_.size() && (s_[pos_] == '-' || s_[pos_] == '+')) sign = s_[pos_++];
    if (pos_ + 1 >= s_.size() || s_[pos_] != close || s_[pos_ + 1] != '}')
      return make_error("line ", line_, ": expected end of tag");
    pos_ += 2;
    return sign;
  }

  expected<char> variable() {
    out_.push_back({token_kind::variable_begin, "{{", line_});
    return inside('}');
  }

  // Tokens up to the closing `%}` or `}}` (only outside brackets).
  expected<char> inside(char close) {
    int depth = 0;
    while (true) {
      while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
      line_ = line_at(pos_);
      if (pos_ >= s_.size()) return make_error("line ", line_, ": unterminated tag");
      if (depth == 0) {
        char c = s_[pos_];
        size_t q = (c == '-' || c == '+') ? pos_ + 1 : pos_;
        if (q + 1 < s_.size() && s_[q] == close && s_[q + 1] == '}' && (c != '+' || close == '%')) {
          char sign = q != pos_ ? c : char(0);
          pos_ = q + 2;
          out_.push_back({close == '%' ? token_kind::block_end : token_kind::variable_end, "", line_});
          return sign;
        }
      }
      auto r = one_token(depth);
      if (!r) return r.error();
    }
  }

  expected<void> one_token(int& depth) {
    char c = s_[pos_];
    if (std::isalpha((unsigned char)c) || c == '_') {
      size_t b = pos_;
      while (pos_ < s_.size() && (std::isalnum((unsigned char)s_[pos_]) || s_[pos_] == '_')) ++pos_;
      out_.push_back({token_kind::name, s_.substr(b, pos_ - b), line_});
      return {};
    }
    if (std::isdigit((unsigned char)c)) return number();
    if (c == '\'' || c == '"') return string_literal();
    static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                ">", "=", ".", ",", ":", "|", "(", ")", "[", "]", "{", "}"};
    for (const char* op : ops) {
      size_t n = std::char_traits<char>::length(op);
      if (s_.compare(pos_, n, op) != 0) continue;
      if (n == 1 && (c == '(' || c == '[' || c == '{')) ++depth;
      if (n == 1 && (c == ')' || c == ']' || c == '}')) {
        if (depth == 0) return make_error("line ", line_, ": unbalanced '", c, "'");
        --depth;
      }
      out_.push_back({token_kind::op, op, line_});
      pos_ += n;
      return {};
    }
    return make_error("line ", line_, ": unexpected character '", c, "' in a tag");
  }

  expected<void> number() {
    size_t b = pos_;
    bool is_float = false;
    auto digits = [&] {
      while (pos_ < s_.size() && (std::isdigit((unsigned char)s_[pos_]) || s_[pos_] == '_')) ++pos_;
    };
    digits();
    if (pos_ + 1 < s_.size() && s_[pos_] == '.' && std::isdigit((unsigned char)s_[pos_ + 1])) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      size_t q = pos_ + 1;
      if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
      if (q < s_.size() && std::isdigit((unsigned char)s_[q])) {
        is_float = true;
        pos_ = q;
        digits();
      }
    }
    std::string text;
    for (size_t i = b; i < pos_; ++i)
      if (s_[i] != '_') text += s_[i];
    out_.push_back({is_float ? token_kind::floating : token_kind::integer, text, line_});
    return {};
  }

  // Python unicode-escape rules, as Jinja applies them to string literals.
  expected<void> string_literal() {
    char q = s_[pos_++];
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) return make_error("line ", line_, ": unterminated string");
      char c = s_[pos_++];
      if (c == q) break;
      if (c != '\\' || pos_ >= s_.size()) {
        out += c;
        continue;
      }
      char e = s_[pos_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'a': out += '\a'; break;
        case '0': out += '\0'; break;
        case '\\': case '\'': case '"': out += e; break;
        case '\n': break;
        case 'x': case 'u': case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > s_.size()) return make_error("line ", line_, ": bad \\", e, " escape");
          uint32_t cp = 0;
          for (size_t i = 0; i < n; ++i) {
            char h = s_[pos_ + i];
            if (!std::isxdigit((unsigned char)h)) return make_error("line ", line_, ": bad \\", e, " escape");
            cp = cp * 16 + uint32_t(std::isdigit((unsigned char)h) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          pos_ += n;
          append_utf8(out, cp);
          break;
        }
        default: out += '\\'; out += e;
      }
    }
    out_.push_back({token_kind::string, std::move(out), line_});
    return {};
  }

  std::string s_;
  lexer_options opt_;
  size_t pos_ = 0;
  bool done_ = false;
  int line_ = 1;
  size_t line_pos_ = 0;
  int line_count_ = 1;
  std::vector<token> out_;
};

// Jinja normalises newlines and drops one trailing newline (keep_trailing_newline=False).
std::string normalize(std::string_view src) {
  std::string s;
  s.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      s += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      s += src[i];
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

}  // namespace

expected<std::vector<token>> tokenize(std::string_view source, const lexer_options& options) {
  return lexer(normalize(source), options).run();
}

}  // namespace troupe::engine::chat
