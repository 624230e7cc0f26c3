// Reads a whole tokenizer.json: the BPE model, added tokens, post-processor, and the other sections.
#include <memory>

#include "engine/tokenizer/json_components.hpp"
#include "engine/tokenizer/tokenizer_impl.hpp"

namespace troupe::engine::tok {

namespace {

// Ids index dense tables: no real vocabulary comes near this, and a hostile file must not make us
// allocate for 2^31 of them.
constexpr int64_t max_token_id = int64_t{1} << 24;

expected<void> parse_merges(simdjson::dom::array arr, bpe_model& m) {
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(arr.size());
  for (element e : arr) {
    std::string_view s;
    simdjson::dom::array two;
    if (e.get_string().get(s) == simdjson::SUCCESS) {
      std::size_t sp = s.find(' ');
      if (sp == std::string_view::npos || s.find(' ', sp + 1) != std::string_view::npos)
        return make_error("merge '", s, "' is not two tokens separated by one space");
      pairs.emplace_back(std::string(s.substr(0, sp)), std::string(s.substr(sp + 1)));
    } else if (e.get_array().get(two) == simdjson::SUCCESS && two.size() == 2) {
      std::string_view a, b;
      if (two.at(0).get_string().get(a) != simdjson::SUCCESS ||
          two.at(1).get_string().get(b) != simdjson::SUCCESS)
        return make_error("a merge is not a pair of strings");
      pairs.emplace_back(std::string(a), std::string(b));
    } else {
      return make_error("a merge is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return m.set_merges(pairs);
}

expected<void> parse_model(element e, bpe_model& m) {
  auto o = as_object(e, "model");
  if (!o) return o.error();
  std::string t = type_of(*o);
  if (t.empty() && field(*o, "merges")) t = "BPE";
  if (t != "BPE") return make_error("model type '", t, "' is not supported (only BPE)");
  if (auto d = field(*o, "dropout")) {
    double p = 0;
    if (d->get_double().get(p) != simdjson::SUCCESS || p != 0.0)
      return make_error("BPE dropout is random and not supported");
  }
  object vocab;
  if (o->at_key("vocab").get_object().get(vocab) != simdjson::SUCCESS)
    return make_error("model has no 'vocab' object");
  int64_t max_id = -1;
  m.vocab.reserve(vocab.size());
  for (auto [key, value] : vocab) {
    int64_t id = 0;
    if (value.get_int64().get(id) != simdjson::SUCCESS || id < 0 || id >= max_token_id)
      return make_error("vocab entry '", key, "' has no valid id (0 to ", max_token_id - 1, ")");
    m.vocab.emplace(std::string(key), static_cast<int32_t>(id));
    max_id = std::max(max_id, id);
  }
  m.id_to_token.assign(static_cast<std::size_t>(max_id + 1), std::string());
  for (const auto& [tokstr, id] : m.vocab) m.id_to_token[static_cast<std::size_t>(id)] = tokstr;
  auto prefix = str_field(*o, "continuing_subword_prefix");
  auto suffix = str_field(*o, "end_of_word_suffix");
  if (!prefix || !suffix) return make_error("model: affixes are not strings");
  m.continuing_subword_prefix = *prefix;
  m.end_of_word_suffix = *suffix;
  m.fuse_unk = bool_field(*o, "fuse_unk", false);
  m.byte_fallback = bool_field(*o, "byte_fallback", false);
  m.ignore_merges = bool_field(*o, "ignore_merges", false);
  auto unk = str_field(*o, "unk_token");
  if (!unk) return unk.error();
  if (!unk->empty()) {
    auto it = m.vocab.find(*unk);
    if (it == m.vocab.end()) return make_error("unk_token '", *unk, "' is not in the vocabulary");
    m.unk_id = it->second;
  }
  simdjson::dom::array merges;
  if (o->at_key("merges").get_array().get(merges) != simdjson::SUCCESS)
    return make_error("model has no 'merges' array");
  if (auto r = parse_merges(merges, m); !r) return make_error("model: ", r.error().message);
  m.finish_setup();
  return {};
}

// Appends TemplateProcessing's single template; only one template processor is supported.
expected<void> parse_template(object o, tokenizer_impl& t) {
  if (!t.single_template.empty()) return make_error("more than one TemplateProcessing is not supported");
  object specials;
  if (o.at_key("special_tokens").get_object().get(specials) != simdjson::SUCCESS)
    return make_error("TemplateProcessing has no 'special_tokens'");
  simdjson::dom::array single;
  if (o.at_key("single").get_array().get(single) != simdjson::SUCCESS)
    return make_error("TemplateProcessing has no 'single'");
  for (element item : single) {
    object io;
    if (item.get_object().get(io) != simdjson::SUCCESS) return make_error("bad TemplateProcessing item");
    std::string_view id;
    template_item ti;
    if (io.at_key("Sequence").at_key("id").get_string().get(id) == simdjson::SUCCESS) {
      if (id != "A") return make_error("TemplateProcessing single refers to sequence '", id, "'");
      ti.is_sequence = true;
    } else if (io.at_key("SpecialToken").at_key("id").get_string().get(id) == simdjson::SUCCESS) {
      simdjson::dom::array ids;
      if (specials.at_key(id).at_key("ids").get_array().get(ids) != simdjson::SUCCESS)
        return make_error("TemplateProcessing special token '", id, "' has no ids");
      for (element v : ids) {
        int64_t x = 0;
        if (v.get_int64().get(x) != simdjson::SUCCESS)
          return make_error("bad id for special token '", id, "'");
        ti.ids.push_back(static_cast<int32_t>(x));
      }
    } else {
      return make_error("TemplateProcessing item is neither Sequence nor SpecialToken");
    }
    t.single_template.push_back(std::move(ti));
  }
  return {};
}

expected<void> parse_post_processor(element e, tokenizer_impl& t) {
  auto o = as_object(e, "post_processor");
  if (!o) return o.error();
  std::string type = type_of(*o);
  if (type == "ByteLevel") return {};  // changes offsets only, never ids
  if (type == "TemplateProcessing") return parse_template(*o, t);
  if (type == "Sequence") {
    simdjson::dom::array arr;
    if (o->at_key("processors").get_array().get(arr) != simdjson::SUCCESS)
      return make_error("post_processor Sequence has no 'processors'");
    for (element c : arr)
      if (auto r = parse_post_processor(c, t); !r) return r;
    return {};
  }
  return make_error("post_processor type '", type, "' is not supported");
}

expected<std::vector<added_token>> parse_added_tokens(element e) {
  std::vector<added_token> out;
  simdjson::dom::array arr;
  if (e.get_array().get(arr) != simdjson::SUCCESS) return make_error("'added_tokens' is not an array");
  for (element item : arr) {
    auto o = as_object(item, "an added token");
    if (!o) return o.error();
    added_token a;
    auto content = str_field(*o, "content");
    if (!content || content->empty()) return make_error("an added token has no content");
    a.content = *content;
    int64_t id = int_field(*o, "id", -1);
    if (id < 0 || id >= max_token_id) return make_error("added token '", a.content, "' has no valid id");
    a.id = static_cast<int32_t>(id);
    a.special = bool_field(*o, "special", false);
    a.lstrip = bool_field(*o, "lstrip", false);
    a.rstrip = bool_field(*o, "rstrip", false);
    a.normalized = bool_field(*o, "normalized", !a.special);
    a.single_word = bool_field(*o, "single_word", false);
    out.push_back(std::move(a));
  }
  return out;
}

bool has_kind(const decoder& d, decoder::kind k) {
  if (d.type == k) return true;
  for (const auto& c : d.children)
    if (has_kind(c, k)) return true;
  return false;
}

}  // namespace

expected<tokenizer_impl*> parse_tokenizer_json(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  element doc;
  if (auto err = parser.parse(padded).get(doc); err != simdjson::SUCCESS)
    return make_error("not valid JSON: ", simdjson::error_message(err));
  auto root = as_object(doc, "the document");
  if (!root) return root.error();
  auto impl = std::make_unique<tokenizer_impl>();
  if (field(*root, "truncation")) return make_error("truncation is not supported");
  if (field(*root, "padding")) return make_error("padding is not supported");
  auto model = field(*root, "model");
  if (!model) return make_error("no 'model'");
  if (auto r = parse_model(*model, impl->model); !r) return r.error();
  if (auto n = field(*root, "normalizer")) {
    auto r = parse_normalizer(*n);
    if (!r) return r.error();
    impl->norm = std::move(*r);
  }
  if (auto p = field(*root, "pre_tokenizer")) {
    auto r = parse_pre_tokenizer(*p);
    if (!r) return r.error();
    impl->pre = std::move(*r);
  }
  if (auto d = field(*root, "decoder")) {
    auto r = parse_decoder(*d);
    if (!r) return r.error();
    impl->dec = std::move(*r);
    impl->has_byte_fallback_decoder = has_kind(*impl->dec, decoder::kind::byte_fallback);
  }
  if (auto p = field(*root, "post_processor"))
    if (auto r = parse_post_processor(*p, *impl); !r) return r.error();
  std::vector<added_token> added;
  if (auto a = field(*root, "added_tokens")) {
    auto r = parse_added_tokens(*a);
    if (!r) return r.error();
    added = std::move(*r);
  }
  impl->set_added_tokens(std::move(added));
  return impl.release();
}

}  // namespace troupe::engine::tok
