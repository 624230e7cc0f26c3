// OpenAI response bodies and stream chunks, written with json_writer.
#include "net/responses.hpp"

#include <atomic>
#include <chrono>
#include <random>

#include "net/json_writer.hpp"

namespace troupe::net {

namespace {

const char* object_name(endpoint kind, bool chunk) {
  if (kind == endpoint::completions) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

void write_head(json_writer& w, const response_meta& m, bool chunk) {
  w.field("id", m.id).field("object", object_name(m.kind, chunk)).field("created", m.created);
  w.field("model", m.model).field("system_fingerprint", system_fingerprint());
}

/// A token's text as it reads after other text: decoding it alone would drop the leading space that
/// SentencePiece-style decoders strip at the start, so it is decoded after an anchor token and the
/// anchor's text removed (" there", not "there").
class token_texts {
 public:
  explicit token_texts(const engine::tokenizer& tok) : tok_(tok) {
    auto ids = tok.encode("a", false);
    if (ids && ids->size() == 1) {
      anchor_ = (*ids)[0];
      const int32_t one[1] = {anchor_};
      anchor_text_ = tok.decode(one);
    }
  }
  std::string operator()(int32_t id) const {
    if (anchor_ >= 0) {
      const int32_t two[2] = {anchor_, id};
      std::string both = tok_.decode(two);
      if (both.rfind(anchor_text_, 0) == 0) return both.substr(anchor_text_.size());
    }
    const int32_t one[1] = {id};
    return tok_.decode(one);
  }

 private:
  const engine::tokenizer& tok_;
  int32_t anchor_ = -1;
  std::string anchor_text_;
};

void write_bytes(json_writer& w, const std::string& s) {
  w.key("bytes").begin_array();
  for (unsigned char c : s) w.value(int64_t(c));
  w.end_array();
}

/// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}], "refusal": null}.
void write_chat_logprobs(json_writer& w, const std::vector<engine::logprobs_entry>& entries, int32_t top,
                         const engine::tokenizer& tok) {
  const token_texts token_text(tok);
  w.begin_object().key("content").begin_array();
  for (const auto& e : entries) {
    const std::string t = token_text(e.chosen.token);
    w.begin_object().field("token", t).field("logprob", e.chosen.logprob);
    write_bytes(w, t);
    w.key("top_logprobs").begin_array();
    for (size_t k = 0; k < e.top.size() && int32_t(k) < top; ++k) {
      const std::string tt = token_text(e.top[k].token);
      w.begin_object().field("token", tt).field("logprob", e.top[k].logprob);
      write_bytes(w, tt);
      w.end_object();
    }
    w.end_array().end_object();
  }
  w.end_array().key("refusal").null().end_object();
}

/// Completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}.
void write_completion_logprobs(json_writer& w, const std::vector<engine::logprobs_entry>& entries,
                               const std::vector<bool>* no_logprob, int32_t top, size_t offset,
                               const engine::tokenizer& tok) {
  const token_texts token_text(tok);
  std::vector<std::string> texts;
  texts.reserve(entries.size());
  for (const auto& e : entries) texts.push_back(token_text(e.chosen.token));
  const auto missing = [&](size_t i) { return no_logprob && i < no_logprob->size() && (*no_logprob)[i]; };
  w.begin_object().key("tokens").begin_array();
  for (const auto& t : texts) w.value(t);
  w.end_array().key("token_logprobs").begin_array();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (missing(i)) w.null(); else w.value(entries[i].chosen.logprob);
  }
  w.end_array().key("top_logprobs").begin_array();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (missing(i)) {
      w.null();
      continue;
    }
    w.begin_object();
    for (size_t k = 0; k < entries[i].top.size() && int32_t(k) < top; ++k)
      w.field(token_text(entries[i].top[k].token), entries[i].top[k].logprob);
    w.end_object();
  }
  w.end_array().key("text_offset").begin_array();
  for (const auto& t : texts) {
    w.value(uint64_t(offset));
    offset += t.size();
  }
  w.end_array().end_object();
}

}  // namespace

std::string make_response_id(endpoint kind) {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()));
  static constexpr char hex[] = "0123456789abcdef";
  std::string id = kind == endpoint::completions ? "cmpl-" : "chatcmpl-";
  const uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) id += hex[(a >> (4 * i)) & 15];
  for (int i = 0; i < 8; ++i) id += hex[(b >> (4 * i)) & 15];
  return id;
}

std::string_view system_fingerprint() { return "fp_troupe_0.1.0"; }

std::string usage_json(const usage_counts& u) {
  json_writer w;
  w.begin_object().field("prompt_tokens", u.prompt_tokens).field("completion_tokens", u.completion_tokens);
  w.field("total_tokens", u.prompt_tokens + u.completion_tokens).end_object();
  return w.take();
}

std::string response_body(const response_meta& m, const std::vector<choice_result>& choices,
                          const usage_counts& usage, int32_t logprobs, const engine::tokenizer& tok) {
  json_writer w;
  w.begin_object();
  write_head(w, m, false);
  w.key("choices").begin_array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const auto& c = choices[i];
    w.begin_object().field("index", int64_t(i));
    if (m.kind == endpoint::chat) {
      w.key("message").begin_object().field("role", "assistant").field("content", c.text);
      w.key("refusal").null().key("tool_calls").begin_array().end_array().end_object();
    } else {
      w.field("text", c.text);
    }
    w.key("logprobs");
    if (logprobs < 0) {
      w.null();
    } else if (m.kind == endpoint::chat) {
      write_chat_logprobs(w, c.logprobs, logprobs, tok);
    } else {
      write_completion_logprobs(w, c.logprobs, &c.no_logprob, logprobs, 0, tok);
    }
    w.field("finish_reason", c.finish_reason);
    w.end_object();
  }
  w.end_array().key("usage").raw(usage_json(usage)).end_object();
  return w.take();
}

std::string chunk_json(const response_meta& m, const chunk_piece& p, int32_t logprobs,
                       const engine::tokenizer& tok, bool usage_null) {
  json_writer w;
  w.begin_object();
  write_head(w, m, true);
  w.key("choices").begin_array().begin_object().field("index", p.index);
  if (m.kind == endpoint::chat) {
    w.key("delta").begin_object();
    if (p.first) w.field("role", "assistant");
    if (p.first || !p.text.empty()) w.field("content", p.text);
    w.end_object();
  } else {
    w.field("text", p.text);
  }
  w.key("logprobs");
  if (logprobs < 0 || p.logprobs == nullptr) {
    w.null();
  } else if (m.kind == endpoint::chat) {
    write_chat_logprobs(w, *p.logprobs, logprobs, tok);
  } else {
    write_completion_logprobs(w, *p.logprobs, nullptr, logprobs, p.text_offset, tok);
  }
  w.key("finish_reason");
  if (p.finish_reason.empty()) w.null(); else w.value(p.finish_reason);
  w.end_object().end_array();
  if (usage_null) w.key("usage").null();
  w.end_object();
  return w.take();
}

std::string usage_chunk_json(const response_meta& m, const usage_counts& u) {
  json_writer w;
  w.begin_object();
  write_head(w, m, true);
  w.key("choices").begin_array().end_array().key("usage").raw(usage_json(u)).end_object();
  return w.take();
}

std::string sse_event(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 8);
  out += "data: ";
  out += json;
  out += "\n\n";
  return out;
}

std::string model_json(const std::string& name, int64_t created, int64_t max_model_len) {
  json_writer w;
  w.begin_object().field("id", name).field("object", "model").field("created", created);
  w.field("owned_by", "troupe").field("root", name).key("parent").null();
  w.field("max_model_len", max_model_len).end_object();
  return w.take();
}

std::string models_json(const std::string& name, int64_t created, int64_t max_model_len) {
  json_writer w;
  w.begin_object().field("object", "list").key("data").begin_array();
  w.raw(model_json(name, created, max_model_len)).end_array().end_object();
  return w.take();
}

}  // namespace troupe::net
