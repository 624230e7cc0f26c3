// Expression evaluation for the chat-template interpreter.
#include "engine/chat/builtins.hpp"
#include "engine/chat/interpreter.hpp"
#include "engine/chat/try.hpp"

namespace troupe::engine::chat::detail {

expected<value> interpreter::eval_inner(const expr& e) {
  switch (e.kind) {
    case expr_kind::literal: return e.literal;
    case expr_kind::name: return lookup(e.name);
    case expr_kind::list:
    case expr_kind::tuple: {
      list_t items;
      for (const auto& a : e.args) {
        CHAT_TRY(v, eval(*a));
        items.push_back(std::move(v));
      }
      return e.kind == expr_kind::tuple ? value::tuple(std::move(items)) : value(std::move(items));
    }
    case expr_kind::dict: {
      dict_t d;
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        CHAT_TRY(k, eval(*e.args[i]));
        if (!k.is_string()) return make_error("dict keys must be strings, not ", k.type_name());
        CHAT_TRY(v, eval(*e.args[i + 1]));
        d.set(k.as_string(), std::move(v));
      }
      return value(std::move(d));
    }
    case expr_kind::attr: {
      CHAT_TRY(obj, eval(*e.args[0]));
      if (obj.is_undefined())
        return make_error("'", obj.undefined_name(), "' is undefined (reading its attribute '", e.name, "')");
      return get_attr(obj, e.name);
    }
    case expr_kind::item: {
      CHAT_TRY(obj, eval(*e.args[0]));
      CHAT_TRY(key, eval(*e.args[1]));
      if (obj.is_undefined())
        return make_error("'", obj.undefined_name(), "' is undefined (reading an item of it)");
      return get_item(obj, key);
    }
    case expr_kind::slice: {
      CHAT_TRY(obj, eval(*e.args[0]));
      value bounds[3];
      for (int i = 0; i < 3; ++i) {
        if (!e.args[size_t(i) + 1]) continue;
        CHAT_TRY(b, eval(*e.args[size_t(i) + 1]));
        bounds[i] = std::move(b);
      }
      if (obj.is_undefined()) return make_error("'", obj.undefined_name(), "' is undefined (slicing it)");
      return get_slice(obj, bounds[0], bounds[1], bounds[2]);
    }
    case expr_kind::call: return eval_call(e);
    case expr_kind::filter: {
      if (!e.args[0]) return make_error("a filter without a subject");
      return eval_filter(e, value());
    }
    case expr_kind::test: {
      CHAT_TRY(subject, eval(*e.args[0]));
      CHAT_TRY(args, eval_args(e, 1));
      CHAT_TRY(ok, apply_test(e.name, subject, args));
      return value(ok != e.negated);
    }
    case expr_kind::unary: {
      CHAT_TRY(v, eval(*e.args[0]));
      if (e.name == "not") return value(!v.truthy());
      return unary_op(e.name, v);
    }
    case expr_kind::binary: {
      CHAT_TRY(a, eval(*e.args[0]));
      CHAT_TRY(b, eval(*e.args[1]));
      return binary_op(e.name, a, b);
    }
    case expr_kind::logical: {
      CHAT_TRY(a, eval(*e.args[0]));
      if (e.name == "and" ? !a.truthy() : a.truthy()) return a;
      return eval(*e.args[1]);
    }
    case expr_kind::cond: {
      CHAT_TRY(c, eval(*e.args[1]));
      if (c.truthy()) return eval(*e.args[0]);
      if (!e.args[2]) return value::undefined("else branch");
      return eval(*e.args[2]);
    }
  }
  return make_error("unknown expression");
}

}  // namespace troupe::engine::chat::detail
