// Template values: truthiness, str()/repr() as Python prints them, equality, ordering and tojson.
#include "engine/chat/value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace troupe::engine::chat {

const value* dict_t::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

void dict_t::set(std::string key, value v) {
  for (auto& [k, old] : entries)
    if (k == key) {
      old = std::move(v);
      return;
    }
  entries.emplace_back(std::move(key), std::move(v));
}

value value::object(std::vector<std::pair<std::string, value>> entries) {
  dict_t d;
  for (auto& [k, v] : entries) d.set(std::move(k), std::move(v));
  return value(std::move(d));
}

value value::make_namespace(std::vector<std::pair<std::string, value>> entries) {
  value v = object(std::move(entries));
  v.mutable_dict().is_namespace = true;
  return v;
}

bool value::truthy() const {
  switch (type()) {
    case kind::undefined:
    case kind::none: return false;
    case kind::boolean: return as_bool();
    case kind::integer: return as_int() != 0;
    case kind::floating: return as_float() != 0.0;
    case kind::string: return !as_string().empty();
    case kind::list: return !as_list().empty();
    case kind::dict: return !as_dict().entries.empty();
    case kind::callable: return true;
  }
  return false;
}

const char* value::type_name() const {
  static const char* names[] = {"undefined", "none", "bool", "int", "float",
                                "string", "list", "dict", "callable"};
  return names[v_.index()];
}

bool value::same_object(const value& other) const {
  if (type() != other.type()) return false;
  if (is_list()) return &as_list() == &other.as_list();
  if (is_dict()) return &as_dict() == &other.as_dict();
  if (is_callable()) return &as_callable() == &other.as_callable();
  return equals(*this, other);
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e = sci.find('e');
  int exp = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0." + std::string(size_t(-exp - 1), '0') + digits;
    } else if (size_t(exp) + 1 >= digits.size()) {
      out += digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char eb[16];
  std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
  return out + eb;
}

static std::string repr_string(const std::string& s) {
  char quote = '\'';
  if (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) quote = '"';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == quote) out += std::string("\\") + char(c);
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else out += char(c);
  }
  return out + quote;
}

std::string value::repr() const {
  if (is_string()) return repr_string(as_string());
  if (is_undefined()) return "Undefined";
  return str();
}

std::string value::str() const {
  switch (type()) {
    case kind::undefined: return "";
    case kind::none: return "None";
    case kind::boolean: return as_bool() ? "True" : "False";
    case kind::integer: return std::to_string(as_int());
    case kind::floating: return format_float(as_float());
    case kind::string: return as_string();
    case kind::list: {
      std::string out = tuple_ ? "(" : "[";
      for (size_t i = 0; i < as_list().size(); ++i) out += (i ? ", " : "") + as_list()[i].repr();
      if (tuple_) return out + (as_list().size() == 1 ? ",)" : ")");
      return out + "]";
    }
    case kind::dict: {
      const dict_t& d = as_dict();
      std::string out = d.is_namespace ? "<Namespace {" : "{";
      for (size_t i = 0; i < d.entries.size(); ++i)
        out += (i ? ", " : "") + repr_string(d.entries[i].first) + ": " + d.entries[i].second.repr();
      return out + (d.is_namespace ? "}>" : "}");
    }
    case kind::callable: return "<function>";
  }
  return "";
}

bool equals(const value& a, const value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case kind::undefined:
    case kind::none: return true;
    case kind::string: return a.as_string() == b.as_string();
    case kind::list: {
      const list_t &x = a.as_list(), &y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case kind::dict: {
      const dict_t &x = a.as_dict(), &y = b.as_dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const value* o = y.find(k);
        if (!o || !equals(v, *o)) return false;
      }
      return true;
    }
    default: return a.same_object(b);
  }
}

expected<bool> less(const value& a, const value& b) {
  if (a.is_undefined()) return make_error("'", a.undefined_name(), "' is undefined");
  if (b.is_undefined()) return make_error("'", b.undefined_name(), "' is undefined");
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list()) {
    const list_t &x = a.as_list(), &y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return make_error("cannot compare ", a.type_name(), " with ", b.type_name());
}

static void json_escape_code(std::string& out, uint32_t c) {
  char b[16];
  std::snprintf(b, sizeof b, "\\u%04x", c);
  out += b;
}

static void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          json_escape_code(out, c);
        } else if (c >= 0x80 && ensure_ascii) {  // decode one UTF-8 sequence, write \u escapes
          int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
          uint32_t cp = len == 1 ? 0xFFFD : c & (0x3F >> (len - 1));
          for (int k = 1; k < len && i + 1 < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3F);
          if (cp >= 0x10000) {
            cp -= 0x10000;
            json_escape_code(out, 0xD800 + (cp >> 10));
            json_escape_code(out, 0xDC00 + (cp & 0x3FF));
          } else {
            json_escape_code(out, cp);
          }
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

static expected<void> json_write(std::string& out, const value& v, const json_format& f, int depth) {
  auto newline = [&](int d) {
    if (f.indent >= 0) out += "\n" + std::string(size_t(f.indent * d), ' ');
  };
  const std::string item_sep = f.item_separator ? *f.item_separator : f.indent >= 0 ? "," : ", ";
  switch (v.type()) {
    case kind::none: out += "null"; return {};
    case kind::boolean: out += v.as_bool() ? "true" : "false"; return {};
    case kind::integer: out += std::to_string(v.as_int()); return {};
    case kind::floating: {
      double d = v.as_float();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity") : format_float(d);
      return {};
    }
    case kind::string: json_string(out, v.as_string(), f.ensure_ascii); return {};
    case kind::list: {
      const list_t& l = v.as_list();
      out += '[';
      for (size_t i = 0; i < l.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        auto r = json_write(out, l[i], f, depth + 1);
        if (!r) return r;
      }
      if (!l.empty()) newline(depth);
      out += ']';
      return {};
    }
    case kind::dict: {
      std::vector<const std::pair<std::string, value>*> items;
      for (const auto& e : v.as_dict().entries) items.push_back(&e);
      if (f.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        json_string(out, items[i]->first, f.ensure_ascii);
        out += f.key_separator;
        auto r = json_write(out, items[i]->second, f, depth + 1);
        if (!r) return r;
      }
      if (!items.empty()) newline(depth);
      out += '}';
      return {};
    }
    case kind::undefined:
      return make_error("tojson: '", v.undefined_name(), "' is undefined");
    case kind::callable: return make_error("tojson: a function is not JSON serializable");
  }
  return {};
}

expected<std::string> to_json(const value& v, const json_format& format) {
  std::string out;
  auto r = json_write(out, v, format, 0);
  if (!r) return r.error();
  return out;
}

}  // namespace troupe::engine::chat
