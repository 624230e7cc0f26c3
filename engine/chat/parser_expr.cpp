// Recursive-descent parsing of Jinja expressions: comparisons, arithmetic, unary operators, literals,
// attribute/subscript/slice/call postfixes, filters and tests.
#include "engine/chat/parser_impl.hpp"

namespace troupe::engine::chat::detail {

namespace {

// A deep copy, for the middle operands of chained comparisons.
expr_ptr clone(const expr* e) {
  if (!e) return nullptr;
  auto c = node(e->kind, e->line, e->name);
  c->literal = e->literal;
  c->negated = e->negated;
  for (const auto& a : e->args) c->args.push_back(clone(a.get()));
  for (const auto& [k, a] : e->kwargs) c->kwargs.emplace_back(k, clone(a.get()));
  return c;
}

}  // namespace

// a < b < c is (a < b) and (b < c), as in Python; b is evaluated twice (expressions have no effects
// but raise_exception, which ends the rendering anyway).
expected<expr_ptr> parser::parse_compare() {
  CHAT_TRY(left, parse_binary_level(0));
  expr_ptr chain;
  const expr* previous = nullptr;
  while (true) {
    std::string op;
    if (cur().kind == token_kind::op &&
        (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
         cur().text == "<=" || cur().text == ">=")) {
      op = t_[i_++].text;
    } else if (is_name("in")) {
      ++i_;
      op = "in";
    } else if (is_name("not") && peek().kind == token_kind::name && peek().text == "in") {
      i_ += 2;
      op = "not in";
    } else {
      return chain ? std::move(chain) : std::move(left);
    }
    CHAT_TRY(right, parse_binary_level(0));
    const expr* right_ptr = right.get();
    expr_ptr lhs = previous ? clone(previous) : std::move(left);
    expr_ptr cmp = binary(expr_kind::binary, op, std::move(lhs), std::move(right));
    chain = chain ? binary(expr_kind::logical, "and", std::move(chain), std::move(cmp)) : std::move(cmp);
    previous = right_ptr;
  }
}

// Levels: 0 `+ -`, 1 `~`, 2 `* / // %`, 3 `**`, then unary.
expected<expr_ptr> parser::parse_binary_level(int level) {
  static const std::vector<std::vector<std::string_view>> ops = {
      {"+", "-"}, {"~"}, {"*", "/", "//", "%"}, {"**"}};
  if (level == 4) return parse_unary(true);
  CHAT_TRY(e, parse_binary_level(level + 1));
  while (cur().kind == token_kind::op &&
         std::find(ops[level].begin(), ops[level].end(), cur().text) != ops[level].end()) {
    std::string op = t_[i_++].text;
    CHAT_TRY(r, parse_binary_level(level + 1));
    e = binary(expr_kind::binary, op, std::move(e), std::move(r));
  }
  return e;
}

expected<expr_ptr> parser::parse_unary(bool with_filter) {
  depth_guard guard(depth_);
  if (depth_ > max_depth) return fail("expressions nest too deeply");
  expr_ptr e;
  if (is_op("-") || is_op("+")) {
    e = node(expr_kind::unary, cur().line, t_[i_++].text);
    CHAT_TRY(o, parse_unary(false));
    e->args.push_back(std::move(o));
  } else {
    CHAT_TRY(p, parse_primary());
    e = std::move(p);
  }
  CHAT_TRY(post, parse_postfix(std::move(e)));
  if (!with_filter) return post;
  return parse_filter_expr(std::move(post));
}

expected<expr_ptr> parser::parse_primary() {
  const token& t = cur();
  int line = t.line;
  auto lit = [&](value v) {
    auto n = node(expr_kind::literal, line);
    n->literal = std::move(v);
    return n;
  };
  switch (t.kind) {
    case token_kind::name: {
      std::string n = t_[i_++].text;
      if (n == "true" || n == "True") return lit(value(true));
      if (n == "false" || n == "False") return lit(value(false));
      if (n == "none" || n == "None") return lit(value::none());
      return node(expr_kind::name, line, n);
    }
    case token_kind::string: {
      std::string s;
      while (cur().kind == token_kind::string) s += t_[i_++].text;  // adjacent literals concatenate
      return lit(value(std::move(s)));
    }
    case token_kind::integer: {
      std::string s = t_[i_++].text;
      errno = 0;
      long long v = std::strtoll(s.c_str(), nullptr, 10);
      if (errno == ERANGE) return make_error("line ", line, ": integer literal too large: ", s);
      return lit(value(int64_t(v)));
    }
    case token_kind::floating: return lit(value(std::strtod(t_[i_++].text.c_str(), nullptr)));
    default: break;
  }
  if (skip_op("(")) {
    if (skip_op(")")) return node(expr_kind::tuple, line);
    CHAT_TRY(e, parse_tuple(true));
    if (auto r = expect_op(")"); !r) return r.error();
    return e;
  }
  if (skip_op("[")) {
    auto n = node(expr_kind::list, line);
    while (!skip_op("]")) {
      if (!n->args.empty())
        if (auto r = expect_op(","); !r) return r.error();
      if (skip_op("]")) break;
      CHAT_TRY(e, parse_expression());
      n->args.push_back(std::move(e));
    }
    return n;
  }
  if (skip_op("{")) {
    auto n = node(expr_kind::dict, line);
    while (!skip_op("}")) {
      if (!n->args.empty())
        if (auto r = expect_op(","); !r) return r.error();
      if (skip_op("}")) break;
      CHAT_TRY(k, parse_expression());
      if (auto r = expect_op(":"); !r) return r.error();
      CHAT_TRY(v, parse_expression());
      n->args.push_back(std::move(k));
      n->args.push_back(std::move(v));
    }
    return n;
  }
  return fail("expected an expression");
}

expected<expr_ptr> parser::parse_postfix(expr_ptr e) {
  while (true) {
    int line = cur().line;
    if (skip_op(".")) {
      if (cur().kind == token_kind::integer) {
        auto n = node(expr_kind::item, line);
        n->args.push_back(std::move(e));
        CHAT_TRY(idx, parse_primary());
        n->args.push_back(std::move(idx));
        e = std::move(n);
        continue;
      }
      CHAT_TRY(name, expect_name());
      auto n = node(expr_kind::attr, line, name);
      n->args.push_back(std::move(e));
      e = std::move(n);
    } else if (skip_op("[")) {
      std::vector<expr_ptr> parts(3);
      bool is_slice = false;
      for (int k = 0; k < 3; ++k) {
        if (!is_op(":") && !is_op("]")) {
          CHAT_TRY(p, parse_expression());
          parts[k] = std::move(p);
        }
        if (k < 2 && skip_op(":")) {
          is_slice = true;
          continue;
        }
        break;
      }
      if (auto r = expect_op("]"); !r) return r.error();
      auto n = node(is_slice ? expr_kind::slice : expr_kind::item, line);
      n->args.push_back(std::move(e));
      if (!is_slice && !parts[0]) return fail("expected a subscript");
      for (int k = 0; k < (is_slice ? 3 : 1); ++k) n->args.push_back(std::move(parts[k]));
      e = std::move(n);
    } else if (is_op("(")) {
      auto n = node(expr_kind::call, line);
      n->args.push_back(std::move(e));
      if (auto r = parse_call_args(*n); !r) return r.error();
      e = std::move(n);
    } else {
      return e;
    }
  }
}

expected<void> parser::parse_call_args(expr& call) {
  if (auto r = expect_op("("); !r) return r;
  bool first = true;
  while (!skip_op(")")) {
    if (!first)
      if (auto r = expect_op(","); !r) return r;
    first = false;
    if (skip_op(")")) break;
    if (is_op("*") || is_op("**")) return fail("*args and **kwargs are not supported");
    if (cur().kind == token_kind::name && peek().kind == token_kind::op && peek().text == "=") {
      std::string key = t_[i_].text;
      i_ += 2;
      CHAT_TRY(v, parse_expression());
      call.kwargs.emplace_back(key, std::move(v));
    } else {
      if (!call.kwargs.empty()) return fail("a positional argument follows a keyword argument");
      CHAT_TRY(v, parse_expression());
      call.args.push_back(std::move(v));
    }
  }
  return {};
}

// One or more `| name(args)` applied to `subject` (null inside {% filter %} and {% set x | f %}).
expected<expr_ptr> parser::parse_filter_chain(expr_ptr subject) {
  do {
    int line = cur().line;
    CHAT_TRY(name, expect_name());
    while (skip_op(".")) {
      CHAT_TRY(more, expect_name());
      name += "." + more;
    }
    auto f = node(expr_kind::filter, line, name);
    f->args.push_back(std::move(subject));
    if (is_op("(")) {
      if (auto r = parse_call_args(*f); !r) return r.error();
    }
    subject = std::move(f);
  } while (skip_op("|"));
  return subject;
}

expected<expr_ptr> parser::parse_filter_expr(expr_ptr e) {
  while (true) {
    int line = cur().line;
    if (skip_op("|")) {
      // one filter at a time, so that `x | f is defined` and calls interleave as in Jinja
      CHAT_TRY(name, expect_name());
      auto f = node(expr_kind::filter, line, name);
      f->args.push_back(std::move(e));
      if (is_op("(")) {
        if (auto r = parse_call_args(*f); !r) return r.error();
      }
      e = std::move(f);
    } else if (skip_name("is")) {
      auto t = node(expr_kind::test, line);
      t->negated = skip_name("not");
      CHAT_TRY(name, expect_name());
      t->name = name;
      t->args.push_back(std::move(e));
      if (is_op("(")) {
        if (auto r = parse_call_args(*t); !r) return r.error();
      } else if ((cur().kind == token_kind::name || cur().kind == token_kind::string ||
                  cur().kind == token_kind::integer || cur().kind == token_kind::floating ||
                  is_op("[") || is_op("{")) &&
                 !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") &&
                 !is_name("is") && !is_name("in") && !is_name("not")) {
        CHAT_TRY(arg, parse_primary());
        CHAT_TRY(post, parse_postfix(std::move(arg)));
        t->args.push_back(std::move(post));
      }
      e = std::move(t);
    } else if (is_op("(")) {
      auto n = node(expr_kind::call, line);
      n->args.push_back(std::move(e));
      if (auto r = parse_call_args(*n); !r) return r.error();
      e = std::move(n);
    } else {
      return e;
    }
  }
}

}  // namespace troupe::engine::chat::detail
