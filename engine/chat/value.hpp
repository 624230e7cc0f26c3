// Values of the chat-template interpreter: Python/Jinja semantics for none, undefined, bool, int, float,
// string, list, insertion-ordered dict and callables.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "config/error.hpp"

namespace troupe::engine::chat {

class value;

/// Positional and keyword arguments of a call (macro, global function, method, filter).
struct call_args {
  std::vector<value> args;
  std::vector<std::pair<std::string, value>> kwargs;
};

/// A callable value: a macro, a global function (range, namespace, raise_exception) or a bound method.
using callable = std::function<expected<value>(call_args&)>;

struct undefined_t {
  std::string name;  ///< what was looked up, for error messages
};
struct none_t {};

/// An insertion-ordered dictionary with string keys (JSON objects, namespaces, the loop object).
struct dict_t {
  std::vector<std::pair<std::string, value>> entries;
  bool is_namespace = false;  ///< `set ns.x = ...` is allowed on namespaces only

  const value* find(std::string_view key) const;
  void set(std::string key, value v);
};

using list_t = std::vector<value>;

enum class kind { undefined, none, boolean, integer, floating, string, list, dict, callable };

/// A template value. Lists and dicts are shared (copying a value is cheap); namespaces are mutable.
class value {
 public:
  value() : v_(undefined_t{}) {}
  value(none_t) : v_(none_t{}) {}
  value(bool b) : v_(b) {}
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  value(I i) : v_(static_cast<int64_t>(i)) {}
  value(double d) : v_(d) {}
  value(const char* s) : v_(std::string(s)) {}
  value(std::string s) : v_(std::move(s)) {}
  value(std::string_view s) : v_(std::string(s)) {}
  value(list_t l) : v_(std::make_shared<list_t>(std::move(l))) {}
  value(dict_t d) : v_(std::make_shared<dict_t>(std::move(d))) {}
  value(callable f) : v_(std::make_shared<callable>(std::move(f))) {}

  static value none() { return value(none_t{}); }
  static value undefined(std::string name = {}) {
    value v;
    v.v_ = undefined_t{std::move(name)};
    return v;
  }
  /// A dict from key/value pairs, in order.
  static value object(std::vector<std::pair<std::string, value>> entries);
  /// A tuple: a list that prints as (a, b), as Python prints dict items and `a, b` expressions.
  static value tuple(list_t items) {
    value v(std::move(items));
    v.tuple_ = true;
    return v;
  }
  /// A mutable namespace (what `namespace(...)` returns).
  static value make_namespace(std::vector<std::pair<std::string, value>> entries);

  kind type() const { return static_cast<kind>(v_.index()); }
  bool is_undefined() const { return type() == kind::undefined; }
  bool is_none() const { return type() == kind::none; }
  bool is_bool() const { return type() == kind::boolean; }
  bool is_int() const { return type() == kind::integer; }
  bool is_float() const { return type() == kind::floating; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return type() == kind::string; }
  bool is_list() const { return type() == kind::list; }
  bool is_dict() const { return type() == kind::dict; }
  bool is_callable() const { return type() == kind::callable; }
  bool is_tuple() const { return tuple_; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return is_bool() ? int64_t(as_bool()) : std::get<int64_t>(v_); }
  double as_float() const { return is_float() ? std::get<double>(v_) : double(as_int()); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const list_t& as_list() const { return *std::get<std::shared_ptr<list_t>>(v_); }
  const dict_t& as_dict() const { return *std::get<std::shared_ptr<dict_t>>(v_); }
  /// The dict itself, for namespace assignment (shared by every copy of this value).
  dict_t& mutable_dict() const { return *std::get<std::shared_ptr<dict_t>>(v_); }
  const callable& as_callable() const { return *std::get<std::shared_ptr<callable>>(v_); }
  const std::string& undefined_name() const { return std::get<undefined_t>(v_).name; }

  /// Python truthiness (undefined, none, 0, "", [] and {} are false).
  bool truthy() const;
  /// What `{{ v }}` prints: Python's str() (None, True, 1.0, ['a'], {'k': 1}; undefined prints nothing).
  std::string str() const;
  /// Python's repr() (strings quoted), as used inside printed lists and dicts.
  std::string repr() const;
  /// A short name of the type for error messages ("string", "list", ...).
  const char* type_name() const;
  /// Whether two values are the same object (namespaces, lists, dicts) for `is sameas`.
  bool same_object(const value& other) const;

 private:
  std::variant<undefined_t, none_t, bool, int64_t, double, std::string, std::shared_ptr<list_t>,
               std::shared_ptr<dict_t>, std::shared_ptr<callable>>
      v_;
  bool tuple_ = false;
};

/// Python ==.
bool equals(const value& a, const value& b);
/// Python <, for numbers, strings and lists; an error for other types.
expected<bool> less(const value& a, const value& b);
/// Python's repr of a float (1.0, 0.1, 1e+16, 1e-05).
std::string format_float(double d);

/// How to_json lays JSON out: the arguments of Python's json.dumps that transformers' tojson passes.
struct json_format {
  int indent = -1;            ///< < 0: one line
  bool sort_keys = false;
  bool ensure_ascii = false;  ///< escape non-ASCII characters as \uXXXX
  std::optional<std::string> item_separator;  ///< default: ", " on one line, "," when indenting
  std::string key_separator = ": ";
};

/// json.dumps(v, ...) as transformers' tojson filter calls it. Undefined values and callables are
/// errors.
expected<std::string> to_json(const value& v, const json_format& format = {});

}  // namespace troupe::engine::chat
