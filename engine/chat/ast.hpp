// The chat-template syntax tree: expressions and statements, each with its source line.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/chat/value.hpp"

namespace troupe::engine::chat {

enum class expr_kind {
  literal,   ///< value
  name,      ///< name
  list,      ///< args: items
  tuple,     ///< args: items (evaluates to a list)
  dict,      ///< args: key0, value0, key1, value1, ...
  attr,      ///< args[0].name
  item,      ///< args[0][args[1]]
  slice,     ///< args[0][args[1]:args[2]:args[3]] (any of 1..3 may be null)
  call,      ///< args[0](args[1..], kwargs)
  filter,    ///< name: filter; args[0]: subject (null inside {% filter %}), args[1..], kwargs
  test,      ///< name: test; args[0]: subject, args[1..]; negated for `is not`
  unary,     ///< name: "-", "+" or "not"; args[0]
  binary,    ///< name: operator (+ - * / // % ** ~ == != < > <= >= in "not in"); args[0], args[1]
  logical,   ///< name: "and" or "or"; args[0], args[1]
  cond,      ///< args[0] if args[1] else args[2] (args[2] may be null)
};

struct expr;
using expr_ptr = std::unique_ptr<expr>;

struct expr {
  expr_kind kind;
  int line = 0;
  std::string name;
  value literal;
  std::vector<expr_ptr> args;
  std::vector<std::pair<std::string, expr_ptr>> kwargs;
  bool negated = false;
};

enum class stmt_kind {
  text,          ///< text
  output,        ///< {{ expr }}
  if_,           ///< conds[i] -> bodies[i]; an extra body is the else branch
  for_,          ///< for targets in expr [if cond]: bodies[0]; else: bodies[1]
  set,           ///< set target = expr (target: name, tuple of names, or name.attr)
  set_block,     ///< {% set target %}bodies[0]{% endset %}, optionally through filter
  macro,         ///< macro name(params = defaults): bodies[0]
  call_block,    ///< {% call(params) expr %}bodies[0]{% endcall %}
  filter_block,  ///< {% filter f %}bodies[0]{% endfilter %}
  with,          ///< {% with params = defaults %}bodies[0]{% endwith %}: a scope of its own
  break_,
  continue_,
};

struct stmt;
using stmt_ptr = std::unique_ptr<stmt>;
using body = std::vector<stmt_ptr>;

struct stmt {
  stmt_kind kind;
  int line = 0;
  std::string text;                   ///< text, or the macro's name
  expr_ptr target;                    ///< set
  expr_ptr expr;                      ///< output, for iterable, set value, call expression, filter
  expr_ptr cond;                      ///< for ... if cond
  std::vector<expr_ptr> conds;        ///< if / elif conditions
  std::vector<body> bodies;
  std::vector<std::string> targets;   ///< for-loop targets
  std::vector<std::string> params;    ///< macro / caller parameters
  std::vector<expr_ptr> defaults;     ///< one per parameter, null when none
};

}  // namespace troupe::engine::chat
