// Internal to engine/chat: runs a parsed template against a context (scopes, loops, macros, output).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/error.hpp"
#include "engine/chat/ast.hpp"

namespace troupe::engine::chat::detail {

class interpreter {
 public:
  /// `context` holds the template's variables; globals (range, namespace, raise_exception,
  /// strftime_now) are added underneath them.
  explicit interpreter(const dict_t& context);

  /// Renders the statements. An error from raise_exception() carries the template's message as is;
  /// other errors start with "line N: ".
  expected<std::string> run(const body& b);

 private:
  enum class flow { normal, break_, continue_ };
  using frame = std::unordered_map<std::string, value>;
  using stack = std::vector<std::shared_ptr<frame>>;

  expected<flow> exec(const body& b, std::string& out);
  expected<flow> exec(const stmt& s, std::string& out);
  expected<flow> exec_for(const stmt& s, std::string& out);
  expected<void> exec_set(const stmt& s, value v);
  value make_macro(const stmt& s);
  expected<value> call_macro(const stmt& s, const stack& scope, call_args& args);
  expected<value> eval(const expr& e);
  expected<value> eval_inner(const expr& e);
  expected<value> eval_call(const expr& e);
  expected<call_args> eval_args(const expr& e, size_t first);
  expected<value> eval_filter(const expr& e, const value& subject);

  value lookup(const std::string& name) const;
  void assign(const std::string& name, value v) { (*scope_.back())[name] = std::move(v); }

  stack scope_;               ///< innermost last; scope_[0] holds the globals and the context
  bool raised_ = false;       ///< raise_exception() was called
  std::string raised_message_;
  int depth_ = 0;             ///< macro recursion depth
};

}  // namespace troupe::engine::chat::detail
