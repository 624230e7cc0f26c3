// Normalisers of tokenizer.json: Unicode normal forms through utf8proc, Prepend, literal Replace, Sequence.
#include "engine/tokenizer/normalizer.hpp"

#include <cstdlib>
#include <utf8proc.h>

#include "engine/tokenizer/unicode.hpp"

namespace troupe::engine::tok {

namespace {

std::string utf8proc_form(const std::string& s, int options) {
  bool ascii = true;
  for (char ch : s) ascii = ascii && static_cast<unsigned char>(ch) < 0x80;
  if (ascii) return s;
  utf8proc_uint8_t* out = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                        static_cast<utf8proc_ssize_t>(s.size()), &out,
                        static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE));
  if (n < 0) return s;
  std::string r(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  std::free(out);
  return r;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  out.reserve(s.size());
  std::size_t pos = 0;
  while (true) {
    std::size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}

}  // namespace

std::string normalizer::apply(std::string s) const {
  switch (type) {
    case kind::nfc:
      return unicode::nfc(s);
    case kind::nfd:
      return utf8proc_form(s, UTF8PROC_DECOMPOSE);
    case kind::nfkc:
      return utf8proc_form(s, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case kind::nfkd:
      return utf8proc_form(s, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    case kind::prepend:
      return s.empty() ? s : pattern + s;
    case kind::replace:
      return replace_all(s, pattern, content);
    case kind::sequence:
      for (const auto& c : children) s = c.apply(std::move(s));
      return s;
  }
  return s;
}

}  // namespace troupe::engine::tok
