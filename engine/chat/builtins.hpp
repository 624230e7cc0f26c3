// Internal to engine/chat: operators, attribute/item access, methods, filters and tests, with Python
// and Jinja semantics.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/error.hpp"
#include "engine/chat/value.hpp"

namespace troupe::engine::chat::detail {

/// Byte offsets of each code point of a UTF-8 string, plus its size at the end.
std::vector<size_t> utf8_offsets(std::string_view s);
/// Number of code points.
size_t utf8_length(std::string_view s);

/// a OP b for + - * / // % ** ~ == != < > <= >= in, "not in".
expected<value> binary_op(const std::string& op, const value& a, const value& b);
/// Unary - and +.
expected<value> unary_op(const std::string& op, const value& a);
/// obj.name: a method of strings/lists/dicts, else the dict's key; missing gives undefined.
expected<value> get_attr(const value& obj, const std::string& name);
/// obj[key]: a dict key, list/string index (negative counts from the end); missing gives undefined.
expected<value> get_item(const value& obj, const value& key);
/// obj[start:stop:step] on lists and strings (null/undefined bounds are omitted ones).
expected<value> get_slice(const value& obj, const value& start, const value& stop, const value& step);
/// The items a for loop (or `list`) sees: list items, dict keys, string characters; undefined: none.
expected<list_t> iterate(const value& v);
/// The bound method `name` of a string, list or dict, or undefined when there is none.
value method(const value& self, const std::string& name);

/// Applies a filter (`value | name(args)`).
expected<value> apply_filter(const std::string& name, const value& subject, call_args& args);
/// Applies a test (`value is name(args)`).
expected<bool> apply_test(const std::string& name, const value& subject, call_args& args);

/// The keyword argument `name`, else positional `pos`, else `def`.
value arg(const call_args& a, size_t pos, std::string_view name, value def = value());

}  // namespace troupe::engine::chat::detail

namespace troupe::engine::chat::detail {

/// str.strip/lstrip/rstrip: Unicode whitespace, or the code points of `chars` when it is a string.
std::string py_strip(std::string_view s, const value& chars, bool left, bool right);
/// str.upper() / str.lower() (simple Unicode case mapping).
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
/// str.capitalize(): the first character upper case, the rest lower case.
std::string py_capitalize(std::string_view s);
/// str.replace(old, new, count): count < 0 replaces all.
std::string py_replace(std::string_view s, std::string_view from, std::string_view to, int64_t count);

}  // namespace troupe::engine::chat::detail

namespace troupe::engine::chat::detail {

/// Python's printf-style `fmt % args` (args: a tuple, a dict for %(name)s, or one value).
expected<value> percent_format(const std::string& fmt, const value& args);

}  // namespace troupe::engine::chat::detail
