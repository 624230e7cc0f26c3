// Python semantics of the template operators, attribute and item access, slicing and iteration.
#include <climits>
#include <cmath>

#include "engine/chat/builtins.hpp"

namespace troupe::engine::chat::detail {

std::vector<size_t> utf8_offsets(std::string_view s) {
  std::vector<size_t> off;
  off.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) off.push_back(i);
  off.push_back(s.size());
  return off;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

value arg(const call_args& a, size_t pos, std::string_view name, value def) {
  for (const auto& [k, v] : a.kwargs)
    if (k == name) return v;
  if (pos < a.args.size()) return a.args[pos];
  return def;
}

expected<list_t> iterate(const value& v) {
  switch (v.type()) {
    case kind::undefined: return list_t{};
    case kind::list: return v.as_list();
    case kind::dict: {
      list_t keys;
      for (const auto& e : v.as_dict().entries) keys.emplace_back(e.first);
      return keys;
    }
    case kind::string: {
      const std::string& s = v.as_string();
      auto off = utf8_offsets(s);
      list_t chars;
      for (size_t i = 0; i + 1 < off.size(); ++i) chars.emplace_back(s.substr(off[i], off[i + 1] - off[i]));
      return chars;
    }
    default: return make_error("'", v.type_name(), "' object is not iterable");
  }
}

static expected<bool> contains(const value& container, const value& item) {
  switch (container.type()) {
    case kind::undefined: return false;
    case kind::string:
      if (!item.is_string()) return make_error("'in <string>' requires a string, not ", item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case kind::list:
      for (const value& x : container.as_list())
        if (equals(x, item)) return true;
      return false;
    case kind::dict:
      if (item.is_list() || item.is_dict()) return make_error("unhashable type: '", item.type_name(), "'");
      return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    default: return make_error("argument of type '", container.type_name(), "' is not iterable");
  }
}

static error operand_error(const std::string& op, const value& a, const value& b) {
  if (a.is_undefined()) return make_error("'", a.undefined_name(), "' is undefined");
  if (b.is_undefined()) return make_error("'", b.undefined_name(), "' is undefined");
  return make_error("unsupported operand types for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'");
}

static expected<value> repeat(const value& seq, int64_t n) {
  size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size();
  if (n > 0 && unit > 0 && uint64_t(n) > (uint64_t(1) << 26) / unit) return make_error("repetition is too large");
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return value(std::move(out));
  }
  list_t out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return value(std::move(out));
}

static expected<value> int_pow(int64_t base, int64_t exp) {
  int64_t r = 1;
  while (exp > 0) {
    if ((exp & 1) && __builtin_mul_overflow(r, base, &r)) return make_error("integer overflow");
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return make_error("integer overflow");
  }
  return value(r);
}

static expected<value> arithmetic(const std::string& op, const value& a, const value& b) {
  bool ints = !a.is_float() && !b.is_float();
  if (ints && (op == "+" || op == "-" || op == "*")) {
    int64_t x = a.as_int(), y = b.as_int(), r;
    bool overflow = op == "+" ? __builtin_add_overflow(x, y, &r)
                  : op == "-" ? __builtin_sub_overflow(x, y, &r) : __builtin_mul_overflow(x, y, &r);
    if (overflow) return make_error("integer overflow");
    return value(r);
  }
  if (op == "+") return value(a.as_float() + b.as_float());
  if (op == "-") return value(a.as_float() - b.as_float());
  if (op == "*") return value(a.as_float() * b.as_float());
  if (op == "/") {
    if (b.as_float() == 0.0) return make_error("division by zero");
    return value(a.as_float() / b.as_float());
  }
  if (op == "//" || op == "%") {
    if (b.as_float() == 0.0) return make_error(op == "%" ? "modulo by zero" : "division by zero");
    if (ints) {
      int64_t x = a.as_int(), y = b.as_int();
      if (x == INT64_MIN && y == -1) return make_error("integer overflow");
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) r += y, q -= 1;
      return op == "%" ? value(r) : value(q);
    }
    double x = a.as_float(), y = b.as_float();
    double r = std::fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    if (r == 0) r = std::copysign(0.0, y);
    return op == "%" ? value(r) : value(std::floor(x / y));
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) return int_pow(a.as_int(), b.as_int());
    return value(std::pow(a.as_float(), b.as_float()));
  }
  return make_error("unsupported operand types for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'");
}

expected<value> binary_op(const std::string& op, const value& a, const value& b) {
  if (op == "~") return value(a.str() + b.str());
  if (op == "==") return value(equals(a, b));
  if (op == "!=") return value(!equals(a, b));
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    if (a.is_undefined() || b.is_undefined()) return operand_error(op, a, b);
    auto r = op == "<" || op == ">=" ? less(a, b) : less(b, a);
    if (!r) return r.error();
    return value(op == "<" || op == ">" ? *r : !*r);
  }
  if (op == "in" || op == "not in") {
    auto r = contains(b, a);
    if (!r) return r.error();
    return value(op == "in" ? *r : !*r);
  }
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) return value(a.as_string() + b.as_string());
    if (a.is_list() && b.is_list()) {
      list_t out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return value(std::move(out));
    }
  }
  if (op == "%" && a.is_string()) return percent_format(a.as_string(), b);
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int());
  }
  return operand_error(op, a, b);
}

expected<value> unary_op(const std::string& op, const value& a) {
  if (!a.is_number()) {
    if (a.is_undefined()) return make_error("'", a.undefined_name(), "' is undefined");
    return make_error("bad operand type for unary ", op, ": '", a.type_name(), "'");
  }
  if (op == "+") return a.is_float() ? value(a.as_float()) : value(a.as_int());
  if (!a.is_float() && a.as_int() == INT64_MIN) return make_error("integer overflow");
  return a.is_float() ? value(-a.as_float()) : value(-a.as_int());
}

expected<value> get_attr(const value& obj, const std::string& name) {
  if (obj.is_dict()) {
    const dict_t& d = obj.as_dict();
    if (!d.is_namespace && (name == "items" || name == "keys" || name == "values" || name == "get"))
      return method(obj, name);
    if (const value* v = d.find(name)) return *v;
    return value::undefined(name);
  }
  if (obj.is_string() || obj.is_list()) return method(obj, name);
  return value::undefined(name);
}

expected<value> get_item(const value& obj, const value& key) {
  if (obj.is_dict()) {
    if (key.is_string()) {
      if (const value* v = obj.as_dict().find(key.as_string())) return *v;
      return get_attr(obj, key.as_string());
    }
    return value::undefined(key.str());
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      int64_t n = int64_t(obj.as_list().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return value::undefined("[" + key.str() + "]");
      return obj.as_list()[size_t(i)];
    }
    const std::string& s = obj.as_string();
    auto off = utf8_offsets(s);
    int64_t n = int64_t(off.size()) - 1;
    if (i < 0) i += n;
    if (i < 0 || i >= n) return value::undefined("[" + key.str() + "]");
    return value(s.substr(off[size_t(i)], off[size_t(i) + 1] - off[size_t(i)]));
  }
  if (key.is_string()) return get_attr(obj, key.as_string());
  return value::undefined(key.str());
}

expected<value> get_slice(const value& obj, const value& start, const value& stop, const value& step_v) {
  if (!obj.is_list() && !obj.is_string()) return make_error("cannot slice a ", obj.type_name());
  for (const value* b : {&start, &stop, &step_v})
    if (!b->is_undefined() && !b->is_none() && !b->is_int() && !b->is_bool())
      return make_error("slice indices must be integers, not ", b->type_name());
  int64_t step = step_v.is_int() || step_v.is_bool() ? step_v.as_int() : 1;
  if (step == 0) return make_error("slice step cannot be zero");
  std::vector<size_t> off;
  int64_t len;
  if (obj.is_list()) {
    len = int64_t(obj.as_list().size());
  } else {
    off = utf8_offsets(obj.as_string());
    len = int64_t(off.size()) - 1;
  }
  auto adjust = [&](const value& v, int64_t def) {
    if (!v.is_int() && !v.is_bool()) return def;
    int64_t x = v.as_int();
    if (x < 0) {
      x += len;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= len) {
      x = step < 0 ? len - 1 : len;
    }
    return x;
  };
  int64_t b = adjust(start, step < 0 ? len - 1 : 0), e = adjust(stop, step < 0 ? -1 : len);
  if (obj.is_list()) {
    list_t out;
    for (int64_t i = b; step > 0 ? i < e : i > e; i += step) out.push_back(obj.as_list()[size_t(i)]);
    return value(std::move(out));
  }
  const std::string& s = obj.as_string();
  std::string out;
  for (int64_t i = b; step > 0 ? i < e : i > e; i += step)
    out.append(s, off[size_t(i)], off[size_t(i) + 1] - off[size_t(i)]);
  return value(std::move(out));
}

}  // namespace troupe::engine::chat::detail
