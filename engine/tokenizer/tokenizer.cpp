// engine::tokenizer: loading, the encode pipeline (added tokens, normaliser, pre-tokenizer, BPE, template)
// and decoding, in the order Hugging Face's TokenizerImpl runs them.
#include "engine/tokenizer/tokenizer.hpp"

#include <fstream>
#include <sstream>

#include "engine/tokenizer/tokenizer_impl.hpp"
#include "engine/tokenizer/unicode.hpp"

namespace troupe::engine {

namespace tok {

void tokenizer_impl::set_added_tokens(std::vector<added_token> tokens) {
  added = std::move(tokens);
  string_map all_contents = model.vocab;
  for (std::size_t i = 0; i < added.size(); ++i) {
    const added_token& t = added[i];
    added_by_id[t.id] = i;
    added_by_content[t.content] = t.id;
    all_contents[t.content] = t.id;
    if (t.special) special_contents.insert(t.content);
    std::string text = t.normalized && norm ? norm->apply(t.content) : t.content;
    if (t.normalized) normalized_matcher.add(t, text);
    else raw_matcher.add(t, t.content);
    added_text.push_back(std::move(text));
  }
  vocab_size = static_cast<int32_t>(all_contents.size());
}

const std::string* tokenizer_impl::token_of(int32_t id) const {
  if (auto it = added_by_id.find(id); it != added_by_id.end()) return &added_text[it->second];
  if (id < 0 || static_cast<std::size_t>(id) >= model.id_to_token.size()) return nullptr;
  const std::string& s = model.id_to_token[static_cast<std::size_t>(id)];
  return s.empty() ? nullptr : &s;
}

expected<void> tokenizer_impl::encode_text(std::string_view raw, bool at_start,
                                           std::vector<int32_t>& out) const {
  std::string normalized = norm ? norm->apply(std::string(raw)) : std::string(raw);
  std::vector<text_span> spans;
  if (normalized_matcher.empty()) {
    if (!normalized.empty()) spans.push_back({0, normalized.size(), -1});
  } else {
    normalized_matcher.split(normalized, spans);
  }
  std::vector<word> words;
  for (const auto& sp : spans) {
    if (sp.id >= 0) {
      out.push_back(sp.id);
      continue;
    }
    words.clear();
    words.push_back({normalized.substr(sp.begin, sp.end - sp.begin), at_start && sp.begin == 0});
    if (pre)
      if (auto r = pre->apply(words); !r) return r;
    for (const auto& w : words)
      if (auto r = model.tokenize(w.text, out); !r) return r;
  }
  return {};
}

}  // namespace tok

expected<tokenizer> tokenizer::load(const std::filesystem::path& dir_or_file) {
  std::filesystem::path file = dir_or_file;
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) file /= "tokenizer.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error(file, ": cannot open the tokenizer file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(file, ": read error");
  return from_json(ss.str(), file.string());
}

expected<tokenizer> tokenizer::from_json(std::string_view json, const std::string& origin) {
  auto parsed = tok::parse_tokenizer_json(json);
  if (!parsed) return make_error(origin, ": ", parsed.error().message);
  tokenizer t;
  t.impl_ = std::shared_ptr<const tok::tokenizer_impl>(*parsed);
  return t;
}

expected<std::vector<int32_t>> tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  TROUPE_CHECK(impl_ != nullptr);
  if (auto bad = unicode::find_invalid_utf8(text); bad != std::string_view::npos)
    return make_error("input is not valid UTF-8 (byte ", bad, ")");
  const tok::tokenizer_impl& m = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<tok::text_span> spans;
  if (m.raw_matcher.empty()) {
    if (!text.empty()) spans.push_back({0, text.size(), -1});
  } else {
    m.raw_matcher.split(text, spans);
  }
  for (const auto& sp : spans) {
    if (sp.id >= 0) ids.push_back(sp.id);
    else if (auto r = m.encode_text(text.substr(sp.begin, sp.end - sp.begin), sp.begin == 0, ids); !r)
      return r.error();
  }
  if (!add_special_tokens || m.single_template.empty()) return ids;
  std::vector<int32_t> out;
  out.reserve(ids.size() + 4);
  for (const auto& item : m.single_template) {
    if (item.is_sequence) out.insert(out.end(), ids.begin(), ids.end());
    else out.insert(out.end(), item.ids.begin(), item.ids.end());
  }
  return out;
}

std::string tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  TROUPE_CHECK(impl_ != nullptr);
  const tok::tokenizer_impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* t = m.token_of(id);
    if (t == nullptr) continue;
    if (skip_special_tokens && m.special_contents.count(*t)) continue;
    tokens.push_back(*t);
  }
  std::string out;
  if (m.dec) {
    m.dec->decode_chain(tokens);
    for (const auto& t : tokens) out += t;
    return out;
  }
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (i) out += ' ';
    out += tokens[i];
  }
  return out;
}

int32_t tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) return it->second;
  if (auto it = impl_->model.vocab.find(token); it != impl_->model.vocab.end()) return it->second;
  return std::nullopt;
}

std::string tokenizer::id_to_token(int32_t id) const {
  const std::string* t = impl_->token_of(id);
  return t ? *t : std::string();
}

bool tokenizer::is_special(int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

bool tokenizer::is_byte_token(int32_t id) const {
  if (!impl_->has_byte_fallback_decoder || impl_->added_by_id.count(id)) return false;
  const std::string* t = impl_->token_of(id);
  return t != nullptr && tok::byte_fallback_value(*t) >= 0;
}

}  // namespace troupe::engine
