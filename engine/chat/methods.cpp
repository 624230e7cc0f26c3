// Python methods of strings, dicts and lists that chat templates call (strip, split, startswith, get,
// items, ...), and the string helpers the filters share.
#include <utf8proc.h>

#include <algorithm>

#include "engine/chat/builtins.hpp"

namespace troupe::engine::chat::detail {
namespace {

std::vector<int32_t> decode(std::string_view s) {
  std::vector<int32_t> cps;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t n = utf8proc_ssize_t(s.size());
  while (n > 0) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t len = utf8proc_iterate(p, n, &cp);
    if (len <= 0) {
      cp = 0xFFFD;
      len = 1;
    }
    cps.push_back(cp);
    p += len;
    n -= len;
  }
  return cps;
}

std::string encode(const std::vector<int32_t>& cps) {
  std::string out;
  for (int32_t cp : cps) {
    utf8proc_uint8_t buf[4];
    out.append(reinterpret_cast<char*>(buf), size_t(utf8proc_encode_char(cp, buf)));
  }
  return out;
}

bool is_py_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_cased_letter(int32_t c) {
  auto cat = utf8proc_category(c);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

value bound(value self, expected<value> (*fn)(const value&, call_args&)) {
  return value(callable([self = std::move(self), fn](call_args& a) { return fn(self, a); }));
}

expected<value> need_string(const value& v, const char* what) {
  if (!v.is_string()) return make_error(what, " needs a string argument, not ", v.type_name());
  return v;
}

list_t split(const std::string& s, const value& sep, int64_t maxsplit) {
  list_t out;
  if (!sep.is_string()) {  // runs of whitespace, empty strings dropped
    auto cps = decode(s);
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && is_py_space(cps[i])) ++i;
      if (i == cps.size()) break;
      size_t b = i;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        size_t e = cps.size();
        while (e > b && is_py_space(cps[e - 1])) --e;
        out.emplace_back(encode({cps.begin() + long(b), cps.begin() + long(e)}));
        break;
      }
      while (i < cps.size() && !is_py_space(cps[i])) ++i;
      out.emplace_back(encode({cps.begin() + long(b), cps.begin() + long(i)}));
    }
    return out;
  }
  const std::string& d = sep.as_string();
  size_t pos = 0;
  while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
    size_t f = s.find(d, pos);
    if (f == std::string::npos) break;
    out.emplace_back(s.substr(pos, f - pos));
    pos = f + d.size();
  }
  out.emplace_back(s.substr(pos));
  return out;
}

expected<value> affix(const value& self, call_args& a, bool prefix) {
  value p = arg(a, 0, "prefix");
  list_t options = p.is_list() ? p.as_list() : list_t{p};
  const std::string& s = self.as_string();
  for (const value& o : options) {
    if (!o.is_string()) return make_error(prefix ? "startswith" : "endswith", " needs strings");
    const std::string& x = o.as_string();
    if (x.size() <= s.size() && (prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0))
      return value(true);
  }
  return value(false);
}

expected<value> format(const value& self, call_args& a) {
  const std::string& f = self.as_string();
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if ((c == '{' || c == '}') && i + 1 < f.size() && f[i + 1] == c) {
      out += c;
      ++i;
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    size_t e = f.find('}', i);
    if (e == std::string::npos) return make_error("str.format: unmatched '{'");
    std::string field = f.substr(i + 1, e - i - 1);
    if (field.find_first_of(":!") != std::string::npos) return make_error("str.format: format specs are not supported");
    value v;
    if (field.empty()) v = arg(a, next++, "");
    else if (std::isdigit((unsigned char)field[0])) v = arg(a, field.size() < 6 ? size_t(std::atoi(field.c_str())) : size_t(-1), "");
    else v = arg(a, size_t(-1), field);
    if (v.is_undefined()) return make_error("str.format: no argument for {", field, "}");
    out += v.str();
    i = e;
  }
  return value(std::move(out));
}

value immutable(const std::string& what) {
  return value(callable([what](call_args&) -> expected<value> {
    return make_error("chat templates cannot modify values (", what, ")");
  }));
}

}  // namespace

std::string py_strip(std::string_view s, const value& chars, bool left, bool right) {
  std::vector<int32_t> set = chars.is_string() ? decode(chars.as_string()) : std::vector<int32_t>{};
  auto strip_it = [&](int32_t c) {
    if (!chars.is_string()) return is_py_space(c);
    return std::find(set.begin(), set.end(), c) != set.end();
  };
  // Works on bytes, decoding only the code points at the two ends.
  auto at = [&](size_t i, size_t end) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                          utf8proc_ssize_t(end - i), &cp);
    return std::pair<int32_t, size_t>(n > 0 ? cp : 0xFFFD, n > 0 ? size_t(n) : 1);
  };
  size_t b = 0, e = s.size();
  while (left && b < e) {
    auto [cp, n] = at(b, e);
    if (!strip_it(cp)) break;
    b += n;
  }
  while (right && e > b) {
    size_t start = e - 1;
    while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (!strip_it(at(start, e).first)) break;
    e = start;
  }
  return std::string(s.substr(b, e - b));
}

std::string py_upper(std::string_view s) {
  auto cps = decode(s);
  for (auto& c : cps) c = utf8proc_toupper(c);
  return encode(cps);
}

std::string py_lower(std::string_view s) {
  auto cps = decode(s);
  for (auto& c : cps) c = utf8proc_tolower(c);
  return encode(cps);
}

std::string py_capitalize(std::string_view s) {
  auto cps = decode(s);
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = i == 0 ? utf8proc_toupper(cps[i]) : utf8proc_tolower(cps[i]);
  return encode(cps);
}

static std::string py_title(std::string_view s) {
  auto cps = decode(s);
  bool prev_cased = false;
  for (auto& c : cps) {
    bool cased = is_cased_letter(c);
    c = cased ? (prev_cased ? utf8proc_tolower(c) : utf8proc_toupper(c)) : c;
    prev_cased = cased;
  }
  return encode(cps);
}

std::string py_replace(std::string_view s, std::string_view from, std::string_view to, int64_t count) {
  std::string out;
  if (from.empty()) {
    auto off = utf8_offsets(s);
    for (size_t i = 0; i + 1 < off.size(); ++i) {
      if (count < 0 || int64_t(i) < count) out += to;
      out += s.substr(off[i], off[i + 1] - off[i]);
    }
    if (count < 0 || int64_t(off.size()) - 1 < count) out += to;
    return out;
  }
  size_t pos = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    size_t f = s.find(from, pos);
    if (f == std::string_view::npos) break;
    out += s.substr(pos, f - pos);
    out += to;
    pos = f + from.size();
  }
  out += s.substr(pos);
  return out;
}

value method(const value& self, const std::string& name) {
  if (self.is_string()) {
    using fn = expected<value> (*)(const value&, call_args&);
    static const std::vector<std::pair<std::string_view, fn>> string_methods = {
        {"strip", [](const value& s, call_args& a) -> expected<value> { return value(py_strip(s.as_string(), arg(a, 0, "chars"), true, true)); }},
        {"lstrip", [](const value& s, call_args& a) -> expected<value> { return value(py_strip(s.as_string(), arg(a, 0, "chars"), true, false)); }},
        {"rstrip", [](const value& s, call_args& a) -> expected<value> { return value(py_strip(s.as_string(), arg(a, 0, "chars"), false, true)); }},
        {"upper", [](const value& s, call_args&) -> expected<value> { return value(py_upper(s.as_string())); }},
        {"lower", [](const value& s, call_args&) -> expected<value> { return value(py_lower(s.as_string())); }},
        {"title", [](const value& s, call_args&) -> expected<value> { return value(py_title(s.as_string())); }},
        {"capitalize", [](const value& s, call_args&) -> expected<value> { return value(py_capitalize(s.as_string())); }},
        {"startswith", [](const value& s, call_args& a) { return affix(s, a, true); }},
        {"endswith", [](const value& s, call_args& a) { return affix(s, a, false); }},
        {"split", [](const value& s, call_args& a) -> expected<value> {
           value mx = arg(a, 1, "maxsplit", value(-1));
           value sep = arg(a, 0, "sep");
           if (sep.is_string() && sep.as_string().empty()) return make_error("str.split: empty separator");
           return value(split(s.as_string(), arg(a, 0, "sep"), mx.is_int() ? mx.as_int() : -1));
         }},
        {"replace", [](const value& s, call_args& a) -> expected<value> {
           value from = arg(a, 0, "old"), to = arg(a, 1, "new"), n = arg(a, 2, "count", value(-1));
           if (!from.is_string() || !to.is_string()) return make_error("str.replace needs two strings");
           return value(py_replace(s.as_string(), from.as_string(), to.as_string(), n.is_int() ? n.as_int() : -1));
         }},
        {"find", [](const value& s, call_args& a) -> expected<value> {
           auto sub = need_string(arg(a, 0, "sub"), "str.find");
           if (!sub) return sub.error();
           size_t f = s.as_string().find(sub->as_string());
           return f == std::string::npos ? value(-1) : value(int64_t(utf8_length(std::string_view(s.as_string()).substr(0, f))));
         }},
        {"count", [](const value& s, call_args& a) -> expected<value> {
           auto sub = need_string(arg(a, 0, "sub"), "str.count");
           if (!sub) return sub.error();
           if (sub->as_string().empty()) return value(int64_t(utf8_length(s.as_string()) + 1));
           int64_t n = 0;
           for (size_t p = s.as_string().find(sub->as_string()); p != std::string::npos;
                p = s.as_string().find(sub->as_string(), p + sub->as_string().size()))
             ++n;
           return value(n);
         }},
        {"join", [](const value& s, call_args& a) -> expected<value> {
           auto items = iterate(arg(a, 0, "iterable"));
           if (!items) return items.error();
           std::string out;
           for (size_t i = 0; i < items->size(); ++i) {
             if (!(*items)[i].is_string()) return make_error("str.join needs strings, got ", (*items)[i].type_name());
             out += (i ? s.as_string() : "") + (*items)[i].as_string();
           }
           return value(std::move(out));
         }},
        {"splitlines", [](const value& s, call_args&) -> expected<value> {
           list_t out = split(s.as_string(), value("\n"), -1);
           if (!out.empty() && out.back().as_string().empty()) out.pop_back();
           return value(std::move(out));
         }},
        {"format", format},
        {"isdigit", [](const value& s, call_args&) -> expected<value> {
           bool ok = !s.as_string().empty();
           for (char c : s.as_string()) ok = ok && std::isdigit((unsigned char)c);
           return value(ok);
         }},
        {"isspace", [](const value& s, call_args&) -> expected<value> {
           auto cps = decode(s.as_string());
           bool ok = !cps.empty();
           for (int32_t c : cps) ok = ok && is_py_space(c);
           return value(ok);
         }},
    };
    for (const auto& [n, f] : string_methods)
      if (n == name) return bound(self, f);
    return value::undefined(name);
  }
  if (self.is_dict()) {
    if (name == "get")
      return bound(self, [](const value& d, call_args& a) -> expected<value> {
        value k = arg(a, 0, "key");
        const value* v = k.is_string() ? d.as_dict().find(k.as_string()) : nullptr;
        return v ? *v : arg(a, 1, "default", value::none());
      });
    if (name == "items")
      return bound(self, [](const value& d, call_args&) -> expected<value> {
        list_t out;
        for (const auto& [k, v] : d.as_dict().entries) out.push_back(value::tuple({value(k), v}));
        return value(std::move(out));
      });
    if (name == "keys") return bound(self, [](const value& d, call_args&) -> expected<value> { return value(*iterate(d)); });
    if (name == "values")
      return bound(self, [](const value& d, call_args&) -> expected<value> {
        list_t out;
        for (const auto& e : d.as_dict().entries) out.push_back(e.second);
        return value(std::move(out));
      });
    if (name == "update" || name == "pop" || name == "setdefault" || name == "clear" || name == "popitem")
      return immutable("dict." + name);
    return value::undefined(name);
  }
  if (self.is_list()) {
    if (name == "index" || name == "count")
      return value(callable([self, name](call_args& a) -> expected<value> {
        value x = arg(a, 0, "value");
        int64_t n = 0;
        for (size_t i = 0; i < self.as_list().size(); ++i) {
          if (!equals(self.as_list()[i], x)) continue;
          if (name == "index") return value(int64_t(i));
          ++n;
        }
        if (name == "index") return make_error("list.index(x): x not in list");
        return value(n);
      }));
    if (name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
        name == "clear" || name == "sort" || name == "reverse")
      return immutable("list." + name);
  }
  return value::undefined(name);
}

}  // namespace troupe::engine::chat::detail
