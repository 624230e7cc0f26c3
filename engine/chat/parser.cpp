// Recursive-descent parsing of Jinja statements (if, for, set, macro, call, filter, break, continue).
#include "engine/chat/parser.hpp"

#include "engine/chat/parser_impl.hpp"

namespace troupe::engine::chat {
namespace detail {

expected<body> parser::parse_body(std::initializer_list<std::string_view> ends, std::string& end) {
  body out;
  while (true) {
    const token& t = cur();
    if (t.kind == token_kind::eof) {
      if (ends.size() == 0) return out;
      return make_error("line ", t.line, ": missing {% ", *(ends.end() - 1), " %} (the template ended)");
    }
    if (t.kind == token_kind::text) {
      auto s = std::make_unique<stmt>();
      s->kind = stmt_kind::text;
      s->line = t.line;
      s->text = t.text;
      out.push_back(std::move(s));
      ++i_;
    } else if (t.kind == token_kind::variable_begin) {
      ++i_;
      auto s = std::make_unique<stmt>();
      s->kind = stmt_kind::output;
      s->line = t.line;
      CHAT_TRY(e, parse_tuple(true));
      s->expr = std::move(e);
      if (cur().kind != token_kind::variable_end) return fail("expected end of tag '}}'");
      ++i_;
      out.push_back(std::move(s));
    } else if (t.kind == token_kind::block_begin) {
      ++i_;
      if (cur().kind == token_kind::name &&
          std::find(ends.begin(), ends.end(), cur().text) != ends.end()) {
        end = t_[i_++].text;
        return out;
      }
      CHAT_TRY(s, parse_statement());
      if (s) out.push_back(std::move(s));
    } else {
      return fail("unexpected token");
    }
  }
}


expected<stmt_ptr> parser::parse_statement() {
  depth_guard guard(depth_);
  if (depth_ > max_depth) return fail("statements nest too deeply");
  if (cur().kind != token_kind::name) return fail("expected a statement name");
  auto s = std::make_unique<stmt>();
  s->line = cur().line;
  std::string kw = t_[i_++].text;
  std::string end;
  if (kw == "if") {
    s->kind = stmt_kind::if_;
    while (true) {
      CHAT_TRY(c, parse_expression());
      s->conds.push_back(std::move(c));
      auto r = expect_end();
      if (!r) return r.error();
      CHAT_TRY(b, parse_body({"elif", "else", "endif"}, end));
      s->bodies.push_back(std::move(b));
      if (end == "elif") continue;
      if (end == "else") {
        if (auto r2 = expect_end(); !r2) return r2.error();
        CHAT_TRY(eb, parse_body({"endif"}, end));
        s->bodies.push_back(std::move(eb));
      }
      break;
    }
  } else if (kw == "for") {
    s->kind = stmt_kind::for_;
    do {
      CHAT_TRY(n, expect_name());
      s->targets.push_back(n);
    } while (skip_op(","));
    if (!skip_name("in")) return fail("expected 'in' in a for loop");
    CHAT_TRY(it, parse_tuple(false));
    s->expr = std::move(it);
    if (skip_name("if")) {
      CHAT_TRY(c, parse_expression());
      s->cond = std::move(c);
    }
    if (is_name("recursive")) return fail("recursive loops are not supported");
    if (auto r = expect_end(); !r) return r.error();
    CHAT_TRY(b, parse_body({"else", "endfor"}, end));
    s->bodies.push_back(std::move(b));
    if (end == "else") {
      if (auto r = expect_end(); !r) return r.error();
      CHAT_TRY(eb, parse_body({"endfor"}, end));
      s->bodies.push_back(std::move(eb));
    }
  } else if (kw == "set") {
    CHAT_TRY(first, expect_name());
    s->target = node(expr_kind::name, s->line, first);
    if (skip_op(".")) {
      CHAT_TRY(attr, expect_name());
      auto a = node(expr_kind::attr, s->line, attr);
      a->args.push_back(std::move(s->target));
      s->target = std::move(a);
    } else if (is_op(",")) {
      auto tup = node(expr_kind::tuple, s->line);
      tup->args.push_back(std::move(s->target));
      while (skip_op(",")) {
        CHAT_TRY(n, expect_name());
        tup->args.push_back(node(expr_kind::name, s->line, n));
      }
      s->target = std::move(tup);
    }
    if (skip_op("=")) {
      s->kind = stmt_kind::set;
      CHAT_TRY(v, parse_tuple(true));
      s->expr = std::move(v);
    } else {
      s->kind = stmt_kind::set_block;
      if (skip_op("|")) {
        CHAT_TRY(f, parse_filter_chain(nullptr));
        s->expr = std::move(f);
      }
      if (auto r = expect_end(); !r) return r.error();
      CHAT_TRY(b, parse_body({"endset"}, end));
      s->bodies.push_back(std::move(b));
    }
  } else if (kw == "macro") {
    s->kind = stmt_kind::macro;
    CHAT_TRY(n, expect_name());
    s->text = n;
    if (auto r = parse_params(*s); !r) return r.error();
    if (auto r = expect_end(); !r) return r.error();
    CHAT_TRY(b, parse_body({"endmacro"}, end));
    s->bodies.push_back(std::move(b));
  } else if (kw == "call") {
    s->kind = stmt_kind::call_block;
    if (is_op("(")) {
      if (auto r = parse_params(*s); !r) return r.error();
    }
    CHAT_TRY(c, parse_expression());
    if (c->kind != expr_kind::call) return fail("expected a macro call after 'call'");
    s->expr = std::move(c);
    if (auto r = expect_end(); !r) return r.error();
    CHAT_TRY(b, parse_body({"endcall"}, end));
    s->bodies.push_back(std::move(b));
  } else if (kw == "filter") {
    s->kind = stmt_kind::filter_block;
    CHAT_TRY(f, parse_filter_chain(nullptr));
    s->expr = std::move(f);
    if (auto r = expect_end(); !r) return r.error();
    CHAT_TRY(b, parse_body({"endfilter"}, end));
    s->bodies.push_back(std::move(b));
  } else if (kw == "with") {
    s->kind = stmt_kind::with;
    while (cur().kind == token_kind::name) {
      CHAT_TRY(n, expect_name());
      if (auto r = expect_op("="); !r) return r.error();
      CHAT_TRY(v, parse_expression());
      s->params.push_back(n);
      s->defaults.push_back(std::move(v));
      if (!skip_op(",")) break;
    }
    if (auto r = expect_end(); !r) return r.error();
    CHAT_TRY(b, parse_body({"endwith"}, end));
    s->bodies.push_back(std::move(b));
  } else if (kw == "generation") {  // transformers' assistant-mask tag: renders its body
    s->kind = stmt_kind::if_;
    s->conds.push_back(node(expr_kind::literal, s->line));
    s->conds.back()->literal = value(true);
    if (auto r = expect_end(); !r) return r.error();
    CHAT_TRY(b, parse_body({"endgeneration"}, end));
    s->bodies.push_back(std::move(b));
  } else if (kw == "break" || kw == "continue") {
    s->kind = kw == "break" ? stmt_kind::break_ : stmt_kind::continue_;
  } else {
    if (kw.rfind("end", 0) == 0 || kw == "else" || kw == "elif")
      return make_error("line ", s->line, ": unexpected '{% ", kw, " %}'");
    return make_error("line ", s->line, ": unsupported tag '{% ", kw, " %}'");
  }
  if (auto r = expect_end(); !r) return r.error();
  return s;
}

expected<void> parser::parse_params(stmt& s) {
  if (auto r = expect_op("("); !r) return r;
  while (!skip_op(")")) {
    if (!s.params.empty())
      if (auto r = expect_op(","); !r) return r;
    if (skip_op(")")) break;
    CHAT_TRY(p, expect_name());
    s.params.push_back(p);
    if (skip_op("=")) {
      CHAT_TRY(d, parse_expression());
      s.defaults.push_back(std::move(d));
    } else {
      s.defaults.push_back(nullptr);
    }
  }
  return {};
}

expected<expr_ptr> parser::parse_tuple(bool with_cond) {
  int line = cur().line;
  CHAT_TRY(e, with_cond ? parse_expression() : parse_or());
  if (!is_op(",")) return e;
  auto tup = node(expr_kind::tuple, line);
  tup->args.push_back(std::move(e));
  while (skip_op(",")) {
    if (cur().kind == token_kind::block_end || cur().kind == token_kind::variable_end || is_op(")")) break;
    CHAT_TRY(n, with_cond ? parse_expression() : parse_or());
    tup->args.push_back(std::move(n));
  }
  return tup;
}

expected<expr_ptr> parser::parse_expression() {
  depth_guard guard(depth_);
  if (depth_ > max_depth) return fail("expressions nest too deeply");
  CHAT_TRY(e, parse_or());
  while (is_name("if")) {
    int line = cur().line;
    ++i_;
    CHAT_TRY(c, parse_or());
    auto n = node(expr_kind::cond, line);
    n->args.push_back(std::move(e));
    n->args.push_back(std::move(c));
    if (skip_name("else")) {
      CHAT_TRY(o, parse_expression());
      n->args.push_back(std::move(o));
    } else {
      n->args.push_back(nullptr);
    }
    e = std::move(n);
  }
  return e;
}

}  // namespace detail

expected<body> parse_template(std::string_view source, const lexer_options& options) {
  CHAT_TRY(tokens, tokenize(source, options));
  return detail::parser(std::move(tokens)).parse_all();
}

}  // namespace troupe::engine::chat
