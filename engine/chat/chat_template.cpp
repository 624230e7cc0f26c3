// The chat-template entry points: parsing, rendering, and building the context from a conversation.
#include "engine/chat/chat_template.hpp"

#include "engine/chat/interpreter.hpp"
#include "engine/chat/parser.hpp"

namespace troupe::engine::chat {
namespace {

// The name or attribute at the end of an expression, through filters: `message.content`,
// `message['content'] | list`, `content`.
bool names_content(const expr* e) {
  while (e && e->kind == expr_kind::filter) e = e->args[0].get();
  if (!e) return false;
  if (e->kind == expr_kind::name || e->kind == expr_kind::attr) return e->name == "content";
  if (e->kind == expr_kind::item && e->args[1]->kind == expr_kind::literal)
    return e->args[1]->literal.is_string() && e->args[1]->literal.as_string() == "content";
  return false;
}

// Whether an expression reads content as a list of parts: `content[0]`, `content | selectattr(...)`,
// `content | map(...)`, `content | select(...)` (and the same through attributes).
bool reads_parts(const expr* e) {
  if (!e) return false;
  if (e->kind == expr_kind::item && e->args[1]->kind == expr_kind::literal && e->args[1]->literal.is_int() &&
      names_content(e->args[0].get()))
    return true;
  if (e->kind == expr_kind::filter && e->args[0] && names_content(e->args[0].get()) &&
      (e->name == "selectattr" || e->name == "rejectattr" || e->name == "map" || e->name == "select" ||
       e->name == "reject"))
    return true;
  for (const auto& a : e->args)
    if (reads_parts(a.get())) return true;
  for (const auto& [k, a] : e->kwargs)
    if (reads_parts(a.get())) return true;
  return false;
}

// Whether the template takes content parts: it loops over content or reads parts of it.
bool takes_parts(const body& b) {
  for (const auto& s : b) {
    if (s->kind == stmt_kind::for_ && names_content(s->expr.get())) return true;
    for (const expr* e : {s->target.get(), s->expr.get(), s->cond.get()})
      if (reads_parts(e)) return true;
    for (const auto& c : s->conds)
      if (reads_parts(c.get())) return true;
    for (const auto& d : s->defaults)
      if (reads_parts(d.get())) return true;
    for (const auto& inner : s->bodies)
      if (takes_parts(inner)) return true;
  }
  return false;
}

expected<value> flatten_parts(const value& content) {
  if (!content.is_list()) return content;
  std::string text;
  bool first = true;
  for (const value& part : content.as_list()) {
    const value* type = part.is_dict() ? part.as_dict().find("type") : nullptr;
    const value* t = part.is_dict() ? part.as_dict().find("text") : nullptr;
    if (!type || !type->is_string() || type->as_string() != "text" || !t || !t->is_string())
      return make_error("this model's chat template takes text only; a content part of type '",
                        type && type->is_string() ? type->as_string() : std::string("?"), "' cannot be rendered");
    text += (first ? "" : "\n") + t->as_string();
    first = false;
  }
  return value(std::move(text));
}

}  // namespace

expected<chat_template> chat_template::parse(std::string_view source) {
  auto b = parse_template(source);
  if (!b) return make_error("chat template: ", b.error().message);
  chat_template t;
  t.content_parts_ = takes_parts(*b);
  t.body_ = std::make_shared<const body>(std::move(*b));
  return t;
}

expected<chat_template> load_chat_template(const config::tokenizer_settings& settings) {
  if (settings.chat_template.empty())
    return make_error("this model has no chat template (neither tokenizer_config.json's chat_template nor "
                      "chat_template.jinja), so it cannot answer chat requests; use completions instead");
  return chat_template::parse(settings.chat_template);
}

expected<std::string> chat_template::render(const value& context) const {
  if (!body_) return make_error("chat template: not parsed");
  if (!context.is_dict() && !context.is_undefined()) return make_error("chat template: the context must be a dict");
  static const dict_t empty;
  detail::interpreter in(context.is_dict() ? context.as_dict() : empty);
  return in.run(*body_);
}

expected<std::vector<chat_message>> messages_from_value(const value& messages) {
  if (!messages.is_list()) return make_error("messages must be a list");
  std::vector<chat_message> out;
  for (size_t i = 0; i < messages.as_list().size(); ++i) {
    const value& m = messages.as_list()[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_dict()) return make_error(where, " must be an object");
    const value* role = m.as_dict().find("role");
    if (!role || !role->is_string()) return make_error(where, ".role must be a string");
    const value* content = m.as_dict().find("content");
    value c = content ? *content : value();
    if (!c.is_string() && !c.is_list() && !c.is_none() && !c.is_undefined())
      return make_error(where, ".content must be a string, a list of content parts or null");
    dict_t fields;
    for (const auto& [k, v] : m.as_dict().entries)
      if (k != "role" && k != "content") fields.set(k, v);
    out.push_back({role->as_string(), std::move(c), value(std::move(fields))});
  }
  return out;
}

expected<std::string> apply_chat_template(const chat_template& tmpl, const std::vector<chat_message>& messages,
                                          bool add_generation_prompt, const std::string& bos_token,
                                          const std::string& eos_token, const value& extra) {
  list_t msgs;
  for (const chat_message& m : messages) {
    dict_t d;
    d.set("role", value(m.role));
    value content = m.content;
    if (!tmpl.takes_content_parts()) {
      auto flat = flatten_parts(content);
      if (!flat) return flat.error();
      content = std::move(*flat);
    }
    if (!content.is_undefined()) d.set("content", std::move(content));  // absent stays absent
    if (m.fields.is_dict())
      for (const auto& [k, v] : m.fields.as_dict().entries)
        if (k != "role" && k != "content") d.set(k, v);
    msgs.emplace_back(std::move(d));
  }
  dict_t ctx;
  ctx.set("messages", value(std::move(msgs)));
  ctx.set("tools", value::none());
  ctx.set("documents", value::none());
  ctx.set("add_generation_prompt", value(add_generation_prompt));
  ctx.set("bos_token", value(bos_token));
  ctx.set("eos_token", value(eos_token));
  if (extra.is_dict())
    for (const auto& [k, v] : extra.as_dict().entries) ctx.set(k, v);
  return tmpl.render(value(std::move(ctx)));
}

}  // namespace troupe::engine::chat
