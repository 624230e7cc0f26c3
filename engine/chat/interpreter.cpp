// Runs chat templates: statements (if, for with loop variables, set, macro, call, filter blocks) and
// expression evaluation, with Jinja's scoping (loop bodies and macros get their own frames).
#include "engine/chat/interpreter.hpp"

#include <ctime>

#include "engine/chat/builtins.hpp"
#include "engine/chat/try.hpp"

namespace troupe::engine::chat::detail {
namespace {

constexpr int max_macro_depth = 64;

bool has_line(const std::string& m) { return m.rfind("line ", 0) == 0; }

expected<value> range_fn(call_args& a) {
  for (const value& v : a.args)
    if (!v.is_int() && !v.is_bool()) return make_error("range() takes integers, not ", v.type_name());
  int64_t start = 0, stop = 0, step = 1;
  if (a.args.size() == 1) stop = a.args[0].as_int();
  else if (a.args.size() >= 2) start = a.args[0].as_int(), stop = a.args[1].as_int();
  if (a.args.size() == 3) step = a.args[2].as_int();
  if (a.args.empty() || a.args.size() > 3) return make_error("range() takes 1 to 3 arguments");
  if (step == 0) return make_error("range() step must not be zero");
  list_t out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() >= 1000000) return make_error("range() is too long");
    out.emplace_back(i);
  }
  return value(std::move(out));
}

expected<value> namespace_fn(call_args& a) {
  std::vector<std::pair<std::string, value>> entries;
  for (const value& v : a.args) {
    if (!v.is_dict()) return make_error("namespace() takes a dict or keyword arguments");
    for (const auto& e : v.as_dict().entries) entries.push_back(e);
  }
  for (auto& [k, v] : a.kwargs) entries.emplace_back(k, v);
  return value::make_namespace(std::move(entries));
}

expected<value> strftime_now_fn(call_args& a) {
  if (a.args.size() != 1 || !a.args[0].is_string()) return make_error("strftime_now() takes a format string");
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[256];
  size_t n = std::strftime(buf, sizeof buf, a.args[0].as_string().c_str(), &tm);
  return value(std::string(buf, n));
}

}  // namespace

interpreter::interpreter(const dict_t& context) {
  auto globals = std::make_shared<frame>();
  (*globals)["range"] = value(callable(range_fn));
  (*globals)["namespace"] = value(callable(namespace_fn));
  (*globals)["strftime_now"] = value(callable(strftime_now_fn));
  (*globals)["dict"] = value(callable([](call_args& a) -> expected<value> {
    dict_t d;
    for (auto& [k, v] : a.kwargs) d.set(k, v);
    return value(std::move(d));
  }));
  (*globals)["raise_exception"] = value(callable([this](call_args& a) -> expected<value> {
    raised_ = true;
    raised_message_ = a.args.empty() ? std::string("raise_exception() was called") : a.args[0].str();
    return error{raised_message_};
  }));
  for (const auto& [k, v] : context.entries) (*globals)[k] = v;
  scope_.push_back(std::move(globals));
}

expected<std::string> interpreter::run(const body& b) {
  std::string out;
  auto r = exec(b, out);
  if (!r) {
    if (raised_) return error{raised_message_};
    return r.error();
  }
  return out;
}

value interpreter::lookup(const std::string& name) const {
  for (auto it = scope_.rbegin(); it != scope_.rend(); ++it) {
    auto f = (*it)->find(name);
    if (f != (*it)->end()) return f->second;
  }
  return value::undefined(name);
}

expected<interpreter::flow> interpreter::exec(const body& b, std::string& out) {
  for (const auto& s : b) {
    CHAT_TRY(f, exec(*s, out));
    if (f != flow::normal) return f;
  }
  return flow::normal;
}

expected<interpreter::flow> interpreter::exec(const stmt& s, std::string& out) {
  switch (s.kind) {
    case stmt_kind::text: out += s.text; return flow::normal;
    case stmt_kind::output: {
      CHAT_TRY(v, eval(*s.expr));
      out += v.str();
      return flow::normal;
    }
    case stmt_kind::if_:
      for (size_t i = 0; i < s.conds.size(); ++i) {
        CHAT_TRY(c, eval(*s.conds[i]));
        if (c.truthy()) return exec(s.bodies[i], out);
      }
      if (s.bodies.size() > s.conds.size()) return exec(s.bodies.back(), out);
      return flow::normal;
    case stmt_kind::for_: return exec_for(s, out);
    case stmt_kind::set: {
      CHAT_TRY(v, eval(*s.expr));
      if (auto r = exec_set(s, std::move(v)); !r) return r.error();
      return flow::normal;
    }
    case stmt_kind::set_block:
    case stmt_kind::filter_block: {
      std::string inner;
      CHAT_TRY(f, exec(s.bodies[0], inner));
      (void)f;
      value v(std::move(inner));
      if (s.expr) {
        CHAT_TRY(filtered, eval_filter(*s.expr, v));
        v = std::move(filtered);
      }
      if (s.kind == stmt_kind::filter_block) {
        out += v.str();
        return flow::normal;
      }
      if (auto r = exec_set(s, std::move(v)); !r) return r.error();
      return flow::normal;
    }
    case stmt_kind::macro: assign(s.text, make_macro(s)); return flow::normal;
    case stmt_kind::call_block: {
      stack here = scope_;
      const stmt* sp = &s;
      value caller(callable([this, sp, here](call_args& a) { return call_macro(*sp, here, a); }));
      const expr& call = *s.expr;
      CHAT_TRY(callee, eval(*call.args[0]));
      if (!callee.is_callable()) return make_error("line ", s.line, ": call block on a non-macro");
      CHAT_TRY(args, eval_args(call, 1));
      args.kwargs.emplace_back("caller", caller);
      CHAT_TRY(res, callee.as_callable()(args));
      out += res.str();
      return flow::normal;
    }
    case stmt_kind::with: {
      auto f = std::make_shared<frame>();
      for (size_t i = 0; i < s.params.size(); ++i) {  // evaluated in the enclosing scope
        CHAT_TRY(v, eval(*s.defaults[i]));
        (*f)[s.params[i]] = std::move(v);
      }
      scope_.push_back(f);
      auto r = exec(s.bodies[0], out);
      scope_.pop_back();
      return r;
    }
    case stmt_kind::break_: return flow::break_;
    case stmt_kind::continue_: return flow::continue_;
  }
  return flow::normal;
}

expected<void> interpreter::exec_set(const stmt& s, value v) {
  const expr& t = *s.target;
  if (t.kind == expr_kind::name) {
    assign(t.name, std::move(v));
    return {};
  }
  if (t.kind == expr_kind::attr) {
    value ns = lookup(t.args[0]->name);
    if (!ns.is_dict() || !ns.as_dict().is_namespace)
      return make_error("line ", s.line, ": cannot assign attribute '", t.name, "' of '",
                        t.args[0]->name, "': only namespace() objects take attribute assignment");
    ns.mutable_dict().set(t.name, std::move(v));
    return {};
  }
  CHAT_TRY(items, iterate(v));
  if (items.size() != t.args.size())
    return make_error("line ", s.line, ": cannot unpack ", items.size(), " values into ", t.args.size(), " names");
  for (size_t i = 0; i < items.size(); ++i) assign(t.args[i]->name, items[i]);
  return {};
}

expected<interpreter::flow> interpreter::exec_for(const stmt& s, std::string& out) {
  CHAT_TRY(iterable, eval(*s.expr));
  if (iterable.is_none() || (!iterable.is_list() && !iterable.is_dict() && !iterable.is_string() &&
                             !iterable.is_undefined()))
    return make_error("line ", s.line, ": cannot loop over ", iterable.type_name());
  CHAT_TRY(all, iterate(iterable));
  auto bind = [&](frame& f, const value& item) -> expected<void> {
    if (s.targets.size() == 1) {
      f[s.targets[0]] = item;
      return {};
    }
    CHAT_TRY(parts, iterate(item));
    if (parts.size() != s.targets.size())
      return make_error("line ", s.line, ": cannot unpack ", parts.size(), " values into ",
                        s.targets.size(), " loop variables");
    for (size_t i = 0; i < parts.size(); ++i) f[s.targets[i]] = parts[i];
    return {};
  };
  list_t items;
  if (s.cond) {
    for (const value& item : all) {
      auto f = std::make_shared<frame>();
      if (auto r = bind(*f, item); !r) return r.error();
      scope_.push_back(f);
      auto c = eval(*s.cond);
      scope_.pop_back();
      if (!c) return c.error();
      if (c->truthy()) items.push_back(item);
    }
  } else {
    items = std::move(all);
  }
  const int64_t n = int64_t(items.size());
  for (int64_t i = 0; i < n; ++i) {
    auto f = std::make_shared<frame>();
    if (auto r = bind(*f, items[size_t(i)]); !r) return r.error();
    dict_t loop;
    loop.set("index", value(i + 1));
    loop.set("index0", value(i));
    loop.set("revindex", value(n - i));
    loop.set("revindex0", value(n - i - 1));
    loop.set("first", value(i == 0));
    loop.set("last", value(i == n - 1));
    loop.set("length", value(n));
    loop.set("depth", value(1));
    loop.set("depth0", value(0));
    loop.set("previtem", i > 0 ? items[size_t(i - 1)] : value::undefined("previtem"));
    loop.set("nextitem", i + 1 < n ? items[size_t(i + 1)] : value::undefined("nextitem"));
    loop.set("cycle", value(callable([i](call_args& a) -> expected<value> {
      if (a.args.empty()) return make_error("loop.cycle() needs at least one argument");
      return a.args[size_t(i) % a.args.size()];
    })));
    (*f)["loop"] = value(std::move(loop));
    scope_.push_back(f);
    auto r = exec(s.bodies[0], out);
    scope_.pop_back();
    if (!r) return r.error();
    if (*r == flow::break_) break;
  }
  if (n == 0 && s.bodies.size() > 1) return exec(s.bodies[1], out);
  return flow::normal;
}

// A macro sees the frames where it is defined (shared, so later top-level sets show), not its caller's.
// It holds them weakly: the macro lives in one of those frames, and a strong hold would be a cycle.
value interpreter::make_macro(const stmt& s) {
  const stmt* sp = &s;
  std::vector<std::weak_ptr<frame>> defined(scope_.begin(), scope_.end());
  return value(callable([this, sp, defined](call_args& a) -> expected<value> {
    stack frames;
    for (const auto& w : defined) {
      frames.push_back(w.lock());
      if (!frames.back()) return make_error("line ", sp->line, ": macro '", sp->text, "' called outside its scope");
    }
    return call_macro(*sp, frames, a);
  }));
}

expected<value> interpreter::call_macro(const stmt& s, const stack& scope, call_args& a) {
  if (depth_ >= max_macro_depth) return make_error("line ", s.line, ": macros nest too deeply");
  auto f = std::make_shared<frame>();
  if (a.args.size() > s.params.size())
    return make_error("line ", s.line, ": macro '", s.text, "' takes ", s.params.size(), " arguments, got ",
                      a.args.size());
  for (size_t i = 0; i < a.args.size(); ++i) (*f)[s.params[i]] = a.args[i];
  for (auto& [k, v] : a.kwargs) {
    bool known = k == "caller";
    for (const auto& p : s.params) known = known || p == k;
    if (!known) return make_error("line ", s.line, ": macro '", s.text, "' has no parameter '", k, "'");
    (*f)[k] = v;
  }
  stack saved = std::move(scope_);
  scope_ = scope;
  scope_.push_back(f);
  ++depth_;
  for (size_t i = 0; i < s.params.size(); ++i) {
    if (f->count(s.params[i])) continue;
    if (!s.defaults[i]) {
      (*f)[s.params[i]] = value::undefined(s.params[i]);
      continue;
    }
    auto d = eval(*s.defaults[i]);
    if (!d) {
      scope_ = std::move(saved);
      --depth_;
      return d.error();
    }
    (*f)[s.params[i]] = *d;
  }
  std::string out;
  auto r = exec(s.bodies[0], out);
  --depth_;
  scope_ = std::move(saved);
  if (!r) return r.error();
  return value(std::move(out));
}

expected<value> interpreter::eval(const expr& e) {
  auto r = eval_inner(e);
  if (!r && !raised_ && !has_line(r.error().message))
    return make_error("line ", e.line, ": ", r.error().message);
  return r;
}

expected<call_args> interpreter::eval_args(const expr& e, size_t first) {
  call_args a;
  for (size_t i = first; i < e.args.size(); ++i) {
    CHAT_TRY(v, eval(*e.args[i]));
    a.args.push_back(std::move(v));
  }
  for (const auto& [k, x] : e.kwargs) {
    CHAT_TRY(v, eval(*x));
    a.kwargs.emplace_back(k, std::move(v));
  }
  return a;
}

expected<value> interpreter::eval_filter(const expr& e, const value& subject) {
  value s = subject;
  if (e.args[0]) {
    CHAT_TRY(inner, e.args[0]->kind == expr_kind::filter && !e.args[0]->args[0]
                        ? eval_filter(*e.args[0], subject)
                        : eval(*e.args[0]));
    s = std::move(inner);
  }
  CHAT_TRY(args, eval_args(e, 1));
  return apply_filter(e.name, s, args);
}

expected<value> interpreter::eval_call(const expr& e) {
  CHAT_TRY(callee, eval(*e.args[0]));
  if (callee.is_undefined()) return make_error("'", callee.undefined_name(), "' is undefined");
  if (!callee.is_callable()) return make_error("a ", callee.type_name(), " is not callable");
  CHAT_TRY(args, eval_args(e, 1));
  return callee.as_callable()(args);
}

}  // namespace troupe::engine::chat::detail
