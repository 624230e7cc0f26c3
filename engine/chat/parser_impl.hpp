// Internal to engine/chat: the parser class shared by parser.cpp (statements) and parser_expr.cpp
// (expressions).
#pragma once

#include <algorithm>
#include <initializer_list>
#include <string>

#include "engine/chat/ast.hpp"
#include "engine/chat/lexer.hpp"
#include "engine/chat/try.hpp"

namespace troupe::engine::chat::detail {

inline expr_ptr node(expr_kind k, int line, std::string name = {}) {
  auto e = std::make_unique<expr>();
  e->kind = k;
  e->line = line;
  e->name = std::move(name);
  return e;
}

class parser {
 public:
  explicit parser(std::vector<token> t) : t_(std::move(t)) {}

  expected<body> parse_all() {
    std::string end;
    return parse_body({}, end);
  }

 private:
  const token& cur() const { return t_[i_]; }
  const token& peek(size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
  bool is_op(std::string_view op) const { return cur().kind == token_kind::op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().kind == token_kind::name && cur().text == n; }
  bool skip_op(std::string_view op) { return is_op(op) ? (++i_, true) : false; }
  bool skip_name(std::string_view n) { return is_name(n) ? (++i_, true) : false; }

  std::string describe(const token& t) const {
    switch (t.kind) {
      case token_kind::block_end: return "end of tag '%}'";
      case token_kind::variable_end: return "end of tag '}}'";
      case token_kind::eof: return "end of template";
      case token_kind::text: return "text";
      case token_kind::string: return "string '" + t.text + "'";
      default: return "'" + t.text + "'";
    }
  }
  error fail(const std::string& what) const {
    return make_error("line ", cur().line, ": ", what, ", found ", describe(cur()));
  }
  expected<void> expect_op(std::string_view op) {
    if (!skip_op(op)) return fail("expected '" + std::string(op) + "'");
    return {};
  }
  expected<void> expect_end() {
    if (cur().kind != token_kind::block_end) return fail("expected end of tag '%}'");
    ++i_;
    return {};
  }
  expected<std::string> expect_name() {
    if (cur().kind != token_kind::name) return fail("expected a name");
    return t_[i_++].text;
  }

  // Statements until a `{% end %}` among `ends`; `end` receives the keyword found (its tag is open).
  expected<body> parse_body(std::initializer_list<std::string_view> ends, std::string& end);
  expected<stmt_ptr> parse_statement();

  expected<void> parse_params(stmt& s);

  // An expression, or a bare tuple `a, b` (as in {{ a, b }} or set x = a, b).
  expected<expr_ptr> parse_tuple(bool with_cond);
  // A full expression, with `a if c else b`.
  expected<expr_ptr> parse_expression();

  expr_ptr binary(expr_kind k, std::string op, expr_ptr a, expr_ptr b) {
    auto n = node(k, a->line, std::move(op));
    n->args.push_back(std::move(a));
    n->args.push_back(std::move(b));
    return n;
  }

  expected<expr_ptr> parse_or() {
    CHAT_TRY(e, parse_and());
    while (skip_name("or")) {
      CHAT_TRY(r, parse_and());
      e = binary(expr_kind::logical, "or", std::move(e), std::move(r));
    }
    return e;
  }
  expected<expr_ptr> parse_and() {
    CHAT_TRY(e, parse_not());
    while (skip_name("and")) {
      CHAT_TRY(r, parse_not());
      e = binary(expr_kind::logical, "and", std::move(e), std::move(r));
    }
    return e;
  }
  expected<expr_ptr> parse_not() {
    if (is_name("not")) {
      auto n = node(expr_kind::unary, cur().line, "not");
      ++i_;
      CHAT_TRY(o, parse_not());
      n->args.push_back(std::move(o));
      return n;
    }
    return parse_compare();
  }
  expected<expr_ptr> parse_compare();
  expected<expr_ptr> parse_binary_level(int level);
  expected<expr_ptr> parse_unary(bool with_filter);
  expected<expr_ptr> parse_primary();
  expected<expr_ptr> parse_postfix(expr_ptr e);
  expected<expr_ptr> parse_filter_expr(expr_ptr e);
  expected<expr_ptr> parse_filter_chain(expr_ptr subject);
  expected<void> parse_call_args(expr& call);

  /// Counts nesting so that a pathological template fails instead of overflowing the stack.
  struct depth_guard {
    int& d;
    explicit depth_guard(int& depth) : d(++depth) {}
    ~depth_guard() { --d; }
  };
  static constexpr int max_depth = 256;

  std::vector<token> t_;
  size_t i_ = 0;
  int depth_ = 0;

};

}  // namespace troupe::engine::chat::detail
