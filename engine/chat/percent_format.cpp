// Python's printf-style string formatting (`'%s: %d' % (a, b)` and the `format` filter).
#include <cmath>
#include <cstdio>

#include "engine/chat/builtins.hpp"
#include "engine/chat/try.hpp"

namespace troupe::engine::chat::detail {
namespace {

struct spec {
  std::string flags;
  int width = -1;
  int precision = -1;
  char conversion = 0;
};

std::string pad(std::string s, const spec& sp) {
  size_t n = utf8_length(s);
  if (sp.width < 0 || n >= size_t(sp.width)) return s;
  std::string fill(size_t(sp.width) - n, ' ');
  return sp.flags.find('-') != std::string::npos ? s + fill : fill + s;
}

// One conversion of a number through the C library, which rounds as Python does.
expected<std::string> number(const value& v, const spec& sp) {
  char c = sp.conversion;
  if (!v.is_number()) {
    if (c == 'c' && v.is_string() && utf8_length(v.as_string()) == 1) return v.as_string();
    return make_error("%", c, " format: a real number is required, not ", v.type_name());
  }
  std::string f = "%" + sp.flags + (sp.width >= 0 ? std::to_string(sp.width) : "");
  char buf[512];
  if (c == 'd' || c == 'i' || c == 'u' || c == 'x' || c == 'X' || c == 'o' || c == 'c') {
    double d = v.as_float();
    if (v.is_float() && (!std::isfinite(d) || std::fabs(d) >= 9.2e18)) return make_error("cannot format ", v.str(), " as an integer");
    long long i = v.is_float() ? static_cast<long long>(d) : static_cast<long long>(v.as_int());
    if (c == 'c') {
      std::string ch;
      if (i < 0 || i > 0x10FFFF) return make_error("%c arg not in range(0x110000)");
      if (i < 0x80) ch = char(i);
      else return make_error("%c of a non-ASCII code point is not supported");
      return pad(ch, sp);
    }
    if (sp.precision >= 0) f += "." + std::to_string(sp.precision);
    bool neg = i < 0 && (c == 'x' || c == 'X' || c == 'o');
    f += std::string("ll") + (c == 'i' || c == 'u' ? 'd' : c);
    std::snprintf(buf, sizeof buf, f.c_str(), neg ? -i : i);
    std::string out = buf;
    if (neg) {  // Python writes -ff where C would print the two's complement
      size_t p = out.find_first_not_of(' ');
      out.insert(p == std::string::npos ? 0 : p, "-");
      if (sp.width >= 0 && out.size() > size_t(sp.width) && out[0] == ' ') out.erase(0, 1);
    }
    return out;
  }
  f += "." + std::to_string(sp.precision >= 0 ? std::min(sp.precision, 100) : 6) + c;
  std::snprintf(buf, sizeof buf, f.c_str(), v.as_float());
  return std::string(buf);
}

}  // namespace

expected<value> percent_format(const std::string& fmt, const value& args) {
  list_t positional = args.is_tuple() ? args.as_list() : list_t{args};
  bool mapping = args.is_dict();
  size_t next = 0;
  bool used_mapping = false;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) return make_error("incomplete format");
    spec sp;
    value arg_value;
    bool have_arg = false;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) return make_error("incomplete format key");
      if (!mapping) return make_error("format requires a mapping");
      const value* v = args.as_dict().find(fmt.substr(i + 1, close - i - 1));
      if (!v) return make_error("format key '", fmt.substr(i + 1, close - i - 1), "' is missing");
      arg_value = *v;
      have_arg = used_mapping = true;
      i = close + 1;
    }
    auto next_arg = [&]() -> expected<value> {
      if (next >= positional.size()) return make_error("not enough arguments for format string");
      return positional[next++];
    };
    while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos) sp.flags += fmt[i++];
    if (i < fmt.size() && fmt[i] == '*') {
      CHAT_TRY(w, next_arg());
      if (!w.is_int()) return make_error("* wants int");
      sp.width = int(std::min<int64_t>(w.as_int(), 1000));
      ++i;
    } else {
      for (sp.width = 0; i < fmt.size() && std::isdigit((unsigned char)fmt[i]); ++i) sp.width = std::min(sp.width * 10 + (fmt[i] - '0'), 1000);
      if (i > 0 && !std::isdigit((unsigned char)fmt[i - 1])) sp.width = -1;
    }
    if (i < fmt.size() && fmt[i] == '.') {
      for (sp.precision = 0, ++i; i < fmt.size() && std::isdigit((unsigned char)fmt[i]); ++i)
        sp.precision = std::min(sp.precision * 10 + (fmt[i] - '0'), 1000);
    }
    while (i < fmt.size() && (fmt[i] == 'l' || fmt[i] == 'h' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) return make_error("incomplete format");
    sp.conversion = fmt[i];
    if (sp.conversion == '%') {
      out += '%';
      continue;
    }
    if (!have_arg) {
      CHAT_TRY(v, next_arg());
      arg_value = std::move(v);
    }
    switch (sp.conversion) {
      case 's':
      case 'r':
      case 'a': {
        std::string s = sp.conversion == 's' ? arg_value.str() : arg_value.repr();
        if (sp.precision >= 0) {
          auto off = utf8_offsets(s);
          if (size_t(sp.precision) + 1 < off.size()) s.resize(off[size_t(sp.precision)]);
        }
        out += pad(s, sp);
        break;
      }
      case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': case 'c':
      case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': {
        CHAT_TRY(s, number(arg_value, sp));
        out += s;
        break;
      }
      default: return make_error("unsupported format character '", sp.conversion, "'");
    }
  }
  // Python skips this check for a single argument with __getitem__ (dicts, lists, Undefined)
  bool indexable = !args.is_tuple() && (args.is_dict() || args.is_list() || args.is_undefined());
  if (!used_mapping && next < positional.size() && !indexable)
    return make_error("not all arguments converted during string formatting");
  return value(std::move(out));
}

}  // namespace troupe::engine::chat::detail
