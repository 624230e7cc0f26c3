// PCRE2 wrapper for pre-tokenizer patterns: UTF and UCP, JIT where it can, no UTF re-check per match.
#include "engine/tokenizer/regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace troupe::engine::tok {

namespace {

// One match-data block per thread, big enough for the whole match (group 0).
pcre2_match_data* thread_match_data() {
  struct holder {
    pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
    ~holder() { pcre2_match_data_free(md); }
  };
  thread_local holder h;
  return h.md;
}

// PCRE2 10.40+ reads \p{Han} as Script_Extensions; Oniguruma means the Script property: say sc:.
// General categories and binary properties stay as they are.
std::string script_property(std::string_view name) {
  std::string_view bare = name;
  std::string neg;
  if (!bare.empty() && bare[0] == '^') {
    neg = "^";
    bare.remove_prefix(1);
  }
  static const char* keep[] = {"Any", "L&", "LC", "Alphabetic", "White_Space", "Uppercase", "Lowercase",
                               "Letter", "Mark", "Number", "Punctuation", "Symbol", "Separator", "Other",
                               "Emoji", "Extended_Pictographic", "Ideographic"};
  bool is_category = bare.size() <= 2;
  for (const char* k : keep) is_category = is_category || bare == k;
  if (is_category || bare.find(':') != std::string_view::npos || bare.find('=') != std::string_view::npos)
    return std::string(name);
  return neg + "sc:" + std::string(bare);
}

}  // namespace

std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char n = p[i + 1];
      ++i;
      if ((n == 'p' || n == 'P') && i + 1 < p.size() && p[i + 1] == '{') {
        std::size_t close = p.find('}', i + 2);
        if (close != std::string_view::npos) {
          out += c;
          out += n;
          out += '{';
          out += script_property(p.substr(i + 2, close - i - 2));
          out += '}';
          i = close;
          continue;
        }
      }
      if (n == 's') {
        out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (n == 'S' && !in_class) {
        out += "[^\\s\\x{85}]";
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      std::size_t close = p.find(":]", i + 2);
      if (close != std::string_view::npos) {
        out.append(p.substr(i, close + 2 - i));
        i = close + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

expected<std::shared_ptr<const regex>> regex::compile(std::string_view pattern) {
  std::string translated = onig_to_pcre2(pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    return make_error("regex '", pattern, "' does not compile at offset ", static_cast<std::size_t>(off),
                      ": ", reinterpret_cast<const char*>(buf));
  }
  std::shared_ptr<regex> r(new regex());
  r->pattern_ = std::string(pattern);
  r->code_ = code;
  r->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return std::shared_ptr<const regex>(std::move(r));
}

regex::~regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

int regex::find(std::string_view s, std::size_t from, std::size_t& begin, std::size_t& end) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = thread_match_data();
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  int rc = jit_ ? pcre2_jit_match(code, subject, s.size(), from, 0, md, nullptr)
                : pcre2_match(code, subject, s.size(), from, PCRE2_NO_UTF_CHECK, md, nullptr);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter keeps its backtracking on the heap
    rc = pcre2_match(code, subject, s.size(), from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  if (rc < 0) return -1;
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
  begin = ov[0];
  end = ov[1];
  return 1;
}

}  // namespace troupe::engine::tok
