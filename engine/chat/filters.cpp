// Jinja filters (trim, tojson, join, map, selectattr, dictsort, indent, ...) and tests (defined, none,
// string, mapping, equalto, ...) as chat templates use them.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "engine/chat/builtins.hpp"
#include "engine/chat/try.hpp"

namespace troupe::engine::chat::detail {
namespace {

// Jinja's attribute getter for filters: dotted paths, item access first, integers index lists.
value lookup_path(const value& obj, const std::string& path) {
  value cur = obj;
  size_t pos = 0;
  while (true) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit((unsigned char)c); });
    digits = digits && part.size() < 18;
    auto next = digits ? get_item(cur, value(int64_t(std::strtoll(part.c_str(), nullptr, 10)))) : get_item(cur, value(part));
    cur = next ? *next : value::undefined(part);
    if (cur.is_undefined() || dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

expected<value> sequence(const value& v, const char* filter) {
  if (v.is_undefined() || v.is_list() || v.is_dict() || v.is_string()) {
    CHAT_TRY(items, iterate(v));
    return value(std::move(items));
  }
  return make_error("filter '", filter, "' needs a sequence, not ", v.type_name());
}

// select/reject/selectattr/rejectattr: args[first] is the test name, the rest its arguments.
expected<value> select(const value& subject, call_args& a, bool by_attr, bool keep) {
  CHAT_TRY(items, sequence(subject, "select"));
  size_t first = by_attr ? 1 : 0;
  std::string attr = by_attr && !a.args.empty() ? a.args[0].str() : "";
  list_t out;
  for (const value& item : items.as_list()) {
    value x = by_attr ? lookup_path(item, attr) : item;
    bool ok;
    if (a.args.size() <= first) {
      ok = x.truthy();
    } else {
      call_args targs;
      targs.args.assign(a.args.begin() + long(first) + 1, a.args.end());
      CHAT_TRY(r, apply_test(a.args[first].str(), x, targs));
      ok = r;
    }
    if (ok == keep) out.push_back(item);
  }
  return value(std::move(out));
}

expected<value> map_filter(const value& subject, call_args& a) {
  CHAT_TRY(items, sequence(subject, "map"));
  list_t out;
  value attr = arg(a, size_t(-1), "attribute");
  if (attr.is_string()) {
    value def = arg(a, size_t(-1), "default");
    for (const value& item : items.as_list()) {
      value x = lookup_path(item, attr.as_string());
      out.push_back(x.is_undefined() && !def.is_undefined() ? def : x);
    }
    return value(std::move(out));
  }
  if (a.args.empty()) return make_error("map needs a filter name or attribute=");
  call_args fargs;
  fargs.args.assign(a.args.begin() + 1, a.args.end());
  fargs.kwargs = a.kwargs;
  for (const value& item : items.as_list()) {
    call_args copy = fargs;
    CHAT_TRY(x, apply_filter(a.args[0].str(), item, copy));
    out.push_back(std::move(x));
  }
  return value(std::move(out));
}

value sort_key(const value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? value(py_lower(v.as_string())) : v;
}

expected<value> sort_filter(const value& subject, call_args& a) {
  CHAT_TRY(items, sequence(subject, "sort"));
  bool reverse = arg(a, 0, "reverse", value(false)).truthy();
  bool cs = arg(a, 1, "case_sensitive", value(false)).truthy();
  value attr = arg(a, 2, "attribute");
  list_t l = items.as_list();
  std::optional<error> err;
  std::stable_sort(l.begin(), l.end(), [&](const value& x, const value& y) {
    value kx = sort_key(attr.is_string() ? lookup_path(x, attr.as_string()) : x, cs);
    value ky = sort_key(attr.is_string() ? lookup_path(y, attr.as_string()) : y, cs);
    if (equals(kx, ky)) return false;  // Jinja compares key lists: equal items are never ordered
    auto r = reverse ? less(ky, kx) : less(kx, ky);
    if (!r && !err) err = r.error();
    return r && *r;
  });
  if (err) return *err;
  return value(std::move(l));
}

expected<value> dictsort(const value& subject, call_args& a) {
  if (!subject.is_dict()) return make_error("dictsort needs a dict, not ", subject.type_name());
  bool cs = arg(a, 0, "case_sensitive", value(false)).truthy();
  bool by_value = arg(a, 1, "by", value("key")).str() == "value";
  bool reverse = arg(a, 2, "reverse", value(false)).truthy();
  list_t pairs;
  for (const auto& [k, v] : subject.as_dict().entries) pairs.push_back(value::tuple({value(k), v}));
  std::optional<error> err;
  std::stable_sort(pairs.begin(), pairs.end(), [&](const value& x, const value& y) {
    size_t i = by_value ? 1 : 0;
    value kx = sort_key(x.as_list()[i], cs), ky = sort_key(y.as_list()[i], cs);
    auto r = reverse ? less(ky, kx) : less(kx, ky);
    if (!r && !err) err = r.error();
    return r && *r;
  });
  if (err) return *err;
  return value(std::move(pairs));
}

std::string indent(const std::string& s, const value& width, bool first, bool blank) {
  std::string pad = width.is_string() ? width.as_string() : std::string(size_t(std::max<int64_t>(0, width.as_int())), ' ');
  std::vector<std::string> lines;
  size_t pos = 0;
  std::string text = s + "\n";
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  std::string out = lines[0];
  for (size_t i = 1; i < lines.size(); ++i)
    out += "\n" + ((blank || !lines[i].empty()) ? pad : std::string()) + lines[i];
  return first ? pad + out : out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string jinja_title(const std::string& s) {
  std::string out;
  size_t i = 0;
  auto sep = [](char c) { return c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '(' || c == '{' || c == '[' || c == '<'; };
  while (i < s.size()) {
    size_t b = i;
    while (i < s.size() && sep(s[i])) ++i;
    out += s.substr(b, i - b);
    b = i;
    while (i < s.size() && !sep(s[i])) ++i;
    if (i > b) out += py_capitalize(s.substr(b, i - b));
  }
  return out;
}

expected<value> to_number(const value& v, bool as_float, const value& def) {
  if (v.is_undefined()) return make_error("'", v.undefined_name(), "' is undefined");
  auto to_int = [](double d) -> expected<value> {
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return make_error("cannot convert ", format_float(d), " to an integer");
    return value(int64_t(d));
  };
  if (v.is_number()) return as_float ? value(v.as_float()) : v.is_float() ? to_int(v.as_float()) : value(v.as_int());
  if (v.is_string()) {
    std::string s = py_strip(v.as_string(), value(), true, true);
    char* end = nullptr;
    if (!as_float) {
      long long i = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && end == s.c_str() + s.size()) return value(int64_t(i));
    }
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) {
      if (as_float) return value(d);
      auto i = to_int(d);
      return i ? *i : def;
    }
  }
  return def;
}

}  // namespace

expected<value> apply_filter(const std::string& name, const value& v, call_args& a) {
  if (name == "trim") return value(py_strip(v.str(), arg(a, 0, "chars"), true, true));
  if (name == "length" || name == "count") {
    if (v.is_string()) return value(int64_t(utf8_length(v.as_string())));
    if (v.is_list()) return value(int64_t(v.as_list().size()));
    if (v.is_dict()) return value(int64_t(v.as_dict().entries.size()));
    if (v.is_undefined()) return value(int64_t(0));
    return make_error("object of type '", v.type_name(), "' has no length");
  }
  if (name == "tojson") {  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    json_format f;
    f.ensure_ascii = arg(a, 0, "ensure_ascii").truthy();
    value ind = arg(a, 1, "indent"), seps = arg(a, 2, "separators");
    if (!ind.is_int() && !ind.is_none() && !ind.is_undefined()) return make_error("tojson: indent must be an integer");
    f.indent = ind.is_int() ? int(std::clamp<int64_t>(ind.as_int(), 0, 64)) : -1;
    if (seps.is_list()) {
      if (seps.as_list().size() != 2 || !seps.as_list()[0].is_string() || !seps.as_list()[1].is_string())
        return make_error("tojson: separators must be two strings");
      f.item_separator = seps.as_list()[0].as_string();
      f.key_separator = seps.as_list()[1].as_string();
    }
    f.sort_keys = arg(a, 3, "sort_keys").truthy();
    CHAT_TRY(s, to_json(v, f));
    return value(std::move(s));
  }
  if (name == "upper") return value(py_upper(v.str()));
  if (name == "lower") return value(py_lower(v.str()));
  if (name == "capitalize") return value(py_capitalize(v.str()));
  if (name == "title") return value(jinja_title(v.str()));
  if (name == "default" || name == "d") {
    bool boolean = arg(a, 1, "boolean", value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return arg(a, 0, "default_value", value(""));
    return v;
  }
  if (name == "join") {
    CHAT_TRY(items, sequence(v, "join"));
    value attr = arg(a, 1, "attribute");
    std::string sep = arg(a, 0, "d", value("")).str(), out;
    for (size_t i = 0; i < items.as_list().size(); ++i) {
      const value& x = items.as_list()[i];
      out += (i ? sep : "") + (attr.is_string() ? lookup_path(x, attr.as_string()) : x).str();
    }
    return value(std::move(out));
  }
  if (name == "first" || name == "last") {
    CHAT_TRY(items, sequence(v, name.c_str()));
    const list_t& l = items.as_list();
    if (l.empty()) return value::undefined(name);
    return name == "first" ? l.front() : l.back();
  }
  if (name == "list") return sequence(v, "list");
  if (name == "map") return map_filter(v, a);
  if (name == "select" || name == "reject") return select(v, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") return select(v, a, true, name == "selectattr");
  if (name == "string") return value(v.str());
  if (name == "int") return to_number(v, false, arg(a, 0, "default", value(int64_t(0))));
  if (name == "float") return to_number(v, true, arg(a, 0, "default", value(0.0)));
  if (name == "replace") {
    value from = arg(a, 0, "old"), to = arg(a, 1, "new"), n = arg(a, 2, "count");
    if (!from.is_string() || !to.is_string()) return make_error("replace needs two strings");
    return value(py_replace(v.str(), from.as_string(), to.as_string(), n.is_int() ? n.as_int() : -1));
  }
  if (name == "items") {
    if (v.is_undefined()) return value(list_t{});
    if (!v.is_dict()) return make_error("items needs a dict, not ", v.type_name());
    list_t out;
    for (const auto& [k, x] : v.as_dict().entries) out.push_back(value::tuple({value(k), x}));
    return value(std::move(out));
  }
  if (name == "dictsort") return dictsort(v, a);
  if (name == "format") {  // Jinja: str(value) % (kwargs or args)
    if (!a.args.empty() && !a.kwargs.empty()) return make_error("format: positional and keyword arguments cannot mix");
    if (!a.kwargs.empty()) return percent_format(v.str(), value::object(a.kwargs));
    return percent_format(v.str(), value::tuple(a.args));
  }
  if (name == "indent") {
    if (!v.is_string()) return make_error("indent needs a string, not ", v.type_name());
    value width = arg(a, 0, "width", value(int64_t(4)));
    if (!width.is_string() && !width.is_int()) return make_error("indent width must be an integer or a string");
    if (width.is_int() && width.as_int() > 1024) return make_error("indent width is too large");
    return value(indent(v.str(), width, arg(a, 1, "first").truthy(), arg(a, 2, "blank").truthy()));
  }
  if (name == "safe") return v;
  if (name == "e" || name == "escape" || name == "forceescape") return value(html_escape(v.str()));
  if (name == "abs") {
    if (!v.is_number()) return make_error("abs needs a number, not ", v.type_name());
    return v.is_float() ? value(std::fabs(v.as_float())) : value(std::llabs(v.as_int()));
  }
  if (name == "round") {
    if (!v.is_number()) return make_error("round needs a number, not ", v.type_name());
    value precision = arg(a, 0, "precision", value(int64_t(0)));
    if (!precision.is_int()) return make_error("round precision must be an integer");
    int64_t digits = precision.as_int();
    std::string method = arg(a, 1, "method", value("common")).str();
    if (method == "common") {
      if (!v.is_float() && digits >= 0) return value(v.as_int());  // Python's round(int, n) is the int
      // printf rounds the exact binary value half-to-even, as Python's round(float, n) does
      char buf[512];
      std::snprintf(buf, sizeof buf, "%.*f", int(std::clamp<int64_t>(digits, 0, 300)), v.as_float());
      return value(std::strtod(buf, nullptr));
    }
    if (method != "ceil" && method != "floor") return make_error("round: method must be common, ceil or floor");
    double p = std::pow(10.0, double(digits));
    double x = v.as_float() * p;
    return value((method == "ceil" ? std::ceil(x) : std::floor(x)) / p);
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto off = utf8_offsets(v.as_string());
      std::string out;
      for (size_t i = off.size() - 1; i > 0; --i) out += v.as_string().substr(off[i - 1], off[i] - off[i - 1]);
      return value(std::move(out));
    }
    CHAT_TRY(items, sequence(v, "reverse"));
    list_t l = items.as_list();
    std::reverse(l.begin(), l.end());
    return value(std::move(l));
  }
  if (name == "sort") return sort_filter(v, a);
  if (name == "unique") {
    CHAT_TRY(items, sequence(v, "unique"));
    list_t out;
    for (const value& x : items.as_list())
      if (x.is_list() || x.is_dict()) return make_error("unique: unhashable type '", x.type_name(), "'");
    for (const value& x : items.as_list())
      if (std::none_of(out.begin(), out.end(), [&](const value& y) { return equals(sort_key(x, false), sort_key(y, false)); }))
        out.push_back(x);
    return value(std::move(out));
  }
  if (name == "min" || name == "max") {  // Python's min/max: direct comparisons, first extreme wins
    CHAT_TRY(items, sequence(v, name.c_str()));
    bool cs = arg(a, 0, "case_sensitive", value(false)).truthy();
    value attr = arg(a, 1, "attribute");
    const list_t& l = items.as_list();
    if (l.empty()) return value::undefined(name);
    auto key = [&](const value& x) { return sort_key(attr.is_string() ? lookup_path(x, attr.as_string()) : x, cs); };
    size_t best = 0;
    for (size_t i = 1; i < l.size(); ++i) {
      CHAT_TRY(better, name == "min" ? less(key(l[i]), key(l[best])) : less(key(l[best]), key(l[i])));
      if (better) best = i;
    }
    return l[best];
  }
  if (name == "sum") {
    CHAT_TRY(items, sequence(v, "sum"));
    value attr = arg(a, 0, "attribute");
    value total = arg(a, 1, "start", value(int64_t(0)));
    for (const value& x : items.as_list()) {
      CHAT_TRY(t, binary_op("+", total, attr.is_string() ? lookup_path(x, attr.as_string()) : x));
      total = std::move(t);
    }
    return total;
  }
  return make_error("unknown filter '", name, "'");
}

expected<bool> apply_test(const std::string& name, const value& v, call_args& a) {
  value other = arg(a, 0, "value");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable" || name == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "sameas") return v.same_object(other);
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, other);
  if (name == "ne" || name == "!=") return !equals(v, other);
  if (name == "in") {
    CHAT_TRY(r, binary_op("in", v, other));
    return r.as_bool();
  }
  for (auto [n, op] : {std::pair{"lt", "<"}, {"lessthan", "<"}, {"<", "<"}, {"le", "<="}, {"<=", "<="},
                       {"gt", ">"}, {"greaterthan", ">"}, {">", ">"}, {"ge", ">="}, {">=", ">="}})
    if (name == n) {
      CHAT_TRY(r, binary_op(op, v, other));
      return r.as_bool();
    }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    value d = name == "divisibleby" ? other : value(int64_t(2));
    CHAT_TRY(r, binary_op("%", v, d));
    return name == "odd" ? equals(r, value(int64_t(1))) : equals(r, value(int64_t(0)));
  }
  if (name == "lower" || name == "upper") {  // str(value).islower() / .isupper()
    std::string s = v.str(), lo = py_lower(s), up = py_upper(s);
    return name == "lower" ? (lo == s && up != s) : (up == s && lo != s);
  }
  return make_error("unknown test '", name, "'");
}

}  // namespace troupe::engine::chat::detail
