// Parses the normaliser, pre-tokenizer and decoder sections of tokenizer.json (simdjson DOM).
#include "engine/tokenizer/json_components.hpp"

namespace troupe::engine::tok {

bool is_null(element e) { return e.type() == simdjson::dom::element_type::NULL_VALUE; }

// Field lookups: missing or null fields give the default.
std::optional<element> field(object o, std::string_view key) {
  element e;
  if (o.at_key(key).get(e) != simdjson::SUCCESS || is_null(e)) return std::nullopt;
  return e;
}

expected<std::string> str_field(object o, std::string_view key, std::string def) {
  auto e = field(o, key);
  if (!e) return def;
  std::string_view v;
  if (e->get_string().get(v) != simdjson::SUCCESS) return make_error("'", key, "' is not a string");
  return std::string(v);
}

bool bool_field(object o, std::string_view key, bool def) {
  auto e = field(o, key);
  bool v = def;
  if (e && e->get_bool().get(v) != simdjson::SUCCESS) return def;
  return v;
}

int64_t int_field(object o, std::string_view key, int64_t def) {
  auto e = field(o, key);
  int64_t v = def;
  if (e && e->get_int64().get(v) != simdjson::SUCCESS) return def;
  return v;
}

expected<object> as_object(element e, std::string_view what) {
  object o;
  if (e.get_object().get(o) != simdjson::SUCCESS) return make_error(what, " is not a JSON object");
  return o;
}

std::string type_of(object o) {
  auto t = str_field(o, "type");
  return t ? *t : std::string();
}

// {"String": "..."} or {"Regex": "..."}; sets is_regex.
expected<std::string> pattern_field(object o, bool& is_regex) {
  auto p = field(o, "pattern");
  if (!p) return make_error("missing 'pattern'");
  auto po = as_object(*p, "'pattern'");
  if (!po) return po.error();
  std::string_view v;
  if (po->at_key("String").get_string().get(v) == simdjson::SUCCESS) {
    is_regex = false;
    return std::string(v);
  }
  if (po->at_key("Regex").get_string().get(v) == simdjson::SUCCESS) {
    is_regex = true;
    return std::string(v);
  }
  return make_error("'pattern' is neither String nor Regex");
}

namespace {

expected<split_behavior> parse_behavior(const std::string& b);
expected<pre_tokenizer::prepend_scheme> parse_scheme(object o);

}  // namespace

expected<normalizer> parse_normalizer(element e) {
  auto o = as_object(e, "normalizer");
  if (!o) return o.error();
  std::string t = type_of(*o);
  normalizer n;
  if (t == "NFC") n.type = normalizer::kind::nfc;
  else if (t == "NFD") n.type = normalizer::kind::nfd;
  else if (t == "NFKC") n.type = normalizer::kind::nfkc;
  else if (t == "NFKD") n.type = normalizer::kind::nfkd;
  else if (t == "Prepend") {
    n.type = normalizer::kind::prepend;
    auto p = str_field(*o, "prepend");
    if (!p) return p.error();
    n.pattern = *p;
  } else if (t == "Replace") {
    n.type = normalizer::kind::replace;
    bool re = false;
    auto p = pattern_field(*o, re);
    if (!p) return make_error("normalizer Replace: ", p.error().message);
    if (re) return make_error("normalizer Replace with a Regex pattern is not supported");
    auto c = str_field(*o, "content");
    if (!c) return c.error();
    n.pattern = *p;
    n.content = *c;
  } else if (t == "Sequence") {
    simdjson::dom::array arr;
    if (o->at_key("normalizers").get_array().get(arr) != simdjson::SUCCESS)
      return make_error("normalizer Sequence has no 'normalizers' array");
    for (element c : arr) {
      auto child = parse_normalizer(c);
      if (!child) return child.error();
      n.children.push_back(std::move(*child));
    }
  } else {
    return make_error("normalizer type '", t, "' is not supported");
  }
  return n;
}

namespace {

expected<split_behavior> parse_behavior(const std::string& b) {
  if (b == "Removed") return split_behavior::removed;
  if (b == "Isolated") return split_behavior::isolated;
  if (b == "MergedWithPrevious") return split_behavior::merged_with_previous;
  if (b == "MergedWithNext") return split_behavior::merged_with_next;
  if (b == "Contiguous") return split_behavior::contiguous;
  return make_error("split behavior '", b, "' is not supported");
}

expected<pre_tokenizer::prepend_scheme> parse_scheme(object o) {
  if (auto s = field(o, "prepend_scheme")) {
    std::string_view v;
    if (s->get_string().get(v) != simdjson::SUCCESS) return make_error("'prepend_scheme' is not a string");
    if (v == "always") return pre_tokenizer::prepend_scheme::always;
    if (v == "first") return pre_tokenizer::prepend_scheme::first;
    if (v == "never") return pre_tokenizer::prepend_scheme::never;
    return make_error("prepend_scheme '", v, "' is not supported");
  }
  return bool_field(o, "add_prefix_space", true) ? pre_tokenizer::prepend_scheme::always
                                                 : pre_tokenizer::prepend_scheme::never;
}

}  // namespace

expected<pre_tokenizer> parse_pre_tokenizer(element e) {
  auto o = as_object(e, "pre_tokenizer");
  if (!o) return o.error();
  std::string t = type_of(*o);
  pre_tokenizer p;
  if (t == "Sequence") {
    simdjson::dom::array arr;
    if (o->at_key("pretokenizers").get_array().get(arr) != simdjson::SUCCESS)
      return make_error("pre_tokenizer Sequence has no 'pretokenizers' array");
    for (element c : arr) {
      auto child = parse_pre_tokenizer(c);
      if (!child) return child.error();
      p.children.push_back(std::move(*child));
    }
  } else if (t == "Split") {
    p.type = pre_tokenizer::kind::split;
    bool is_re = false;
    auto pat = pattern_field(*o, is_re);
    if (!pat) return make_error("pre_tokenizer Split: ", pat.error().message);
    if (is_re) {
      auto re = regex::compile(*pat);
      if (!re) return make_error("pre_tokenizer Split: ", re.error().message);
      p.re = *re;
    } else {
      p.literal = *pat;
    }
    auto b = parse_behavior(str_field(*o, "behavior", "Isolated").value());
    if (!b) return make_error("pre_tokenizer Split: ", b.error().message);
    p.behavior = *b;
    p.invert = bool_field(*o, "invert", false);
  } else if (t == "ByteLevel") {
    p.type = pre_tokenizer::kind::byte_level;
    p.add_prefix_space = bool_field(*o, "add_prefix_space", true);
    p.use_regex = bool_field(*o, "use_regex", true);
  } else if (t == "Metaspace") {
    p.type = pre_tokenizer::kind::metaspace;
    auto r = str_field(*o, "replacement", "\xE2\x96\x81");
    if (!r) return r.error();
    p.replacement = *r;
    auto s = parse_scheme(*o);
    if (!s) return make_error("pre_tokenizer Metaspace: ", s.error().message);
    p.scheme = *s;
    p.split_on_replacement = bool_field(*o, "split", true);
  } else if (t == "Digits") {
    p.type = pre_tokenizer::kind::digits;
    p.individual_digits = bool_field(*o, "individual_digits", false);
  } else {
    return make_error("pre_tokenizer type '", t, "' is not supported");
  }
  return p;
}

expected<decoder> parse_decoder(element e) {
  auto o = as_object(e, "decoder");
  if (!o) return o.error();
  std::string t = type_of(*o);
  decoder d;
  if (t == "ByteLevel") d.type = decoder::kind::byte_level;
  else if (t == "ByteFallback") d.type = decoder::kind::byte_fallback;
  else if (t == "Fuse") d.type = decoder::kind::fuse;
  else if (t == "Strip") {
    d.type = decoder::kind::strip;
    auto c = str_field(*o, "content", " ");
    if (!c) return c.error();
    d.content = *c;
    d.strip_start = static_cast<std::size_t>(int_field(*o, "start", 0));
    d.strip_stop = static_cast<std::size_t>(int_field(*o, "stop", 0));
  } else if (t == "Replace") {
    d.type = decoder::kind::replace;
    bool re = false;
    auto p = pattern_field(*o, re);
    if (!p) return make_error("decoder Replace: ", p.error().message);
    if (re) return make_error("decoder Replace with a Regex pattern is not supported");
    auto c = str_field(*o, "content");
    if (!c) return c.error();
    d.pattern = *p;
    d.content = *c;
  } else if (t == "Metaspace") {
    d.type = decoder::kind::metaspace;
    auto r = str_field(*o, "replacement", "\xE2\x96\x81");
    if (!r) return r.error();
    d.pattern = *r;
    auto s = parse_scheme(*o);
    if (!s) return make_error("decoder Metaspace: ", s.error().message);
    d.prepend = *s != pre_tokenizer::prepend_scheme::never;
  } else if (t == "Sequence") {
    simdjson::dom::array arr;
    if (o->at_key("decoders").get_array().get(arr) != simdjson::SUCCESS)
      return make_error("decoder Sequence has no 'decoders' array");
    for (element c : arr) {
      auto child = parse_decoder(c);
      if (!child) return child.error();
      d.children.push_back(std::move(*child));
    }
  } else {
    return make_error("decoder type '", t, "' is not supported");
  }
  return d;
}

}  // namespace troupe::engine::tok
