// The generation endpoints: one job per HTTP request (one runtime stream per prompt), answered as one
// JSON body or streamed as server-sent events.
#include "net/generate.hpp"

#include <chrono>
#include <ctime>
#include <memory>
#include <thread>

#include "net/connection_probe.hpp"
#include "net/http_util.hpp"
#include "net/responses.hpp"

namespace troupe::net {

namespace {

using namespace std::chrono_literals;

/// One HTTP generation request in flight: its runtime streams (one per prompt) and its choices
/// (prompt index * n + sample). Unfinished streams are cancelled when the job ends.
struct job {
  response_meta meta;
  openai_request req;
  const engine::tokenizer* tok = nullptr;
  std::vector<std::shared_ptr<request_stream>> streams;
  std::vector<std::string> echo_texts;  // per prompt, when echo is set
  std::vector<choice_result> choices;
  std::vector<bool> started;            // streaming: the choice's first chunk was sent
  connection_probe probe;
  std::chrono::steady_clock::time_point next_probe = std::chrono::steady_clock::now() + 100ms;
  std::atomic<int64_t>* in_flight = nullptr;
  bool failed = false;                  // a sample finished with "error"
  std::string error_message;

  job(const httplib::Request& http) : probe(http.remote_addr, http.remote_port, http.local_port) {}
  job(const job&) = delete;
  ~job() {
    cancel();
    if (in_flight) --*in_flight;
  }

  int32_t n() const { return req.params.n; }
  bool all_done() const {
    for (const auto& s : streams)
      if (!s->done()) return false;
    return true;
  }
  /// Whether the client has closed the connection (looked at most every 100 ms).
  bool client_left() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_probe) return false;
    next_probe = now + 100ms;
    return probe.client_gone();
  }
  void cancel() {
    for (const auto& s : streams)
      if (!s->done()) s->cancel();
  }
  usage_counts usage() const {
    usage_counts u;
    for (const auto& s : streams) u.prompt_tokens += int64_t(s->prompt_ids().size());
    for (const auto& c : choices) u.completion_tokens += c.completion_tokens;
    return u;
  }
  /// Records an event in its choice; returns the choice index.
  size_t apply(size_t prompt, const stream_event& ev) {
    const size_t index = prompt * size_t(n()) + size_t(ev.sample);
    auto& c = choices.at(index);
    c.text += ev.text;
    c.completion_tokens += int64_t(ev.token_ids.size());
    c.logprobs.insert(c.logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
    c.no_logprob.resize(c.logprobs.size(), false);
    if (ev.finished) {
      c.finish_reason = ev.finish_reason;
      if (ev.finish_reason == "error") {
        failed = true;
        error_message = ev.stop_reason.empty() ? "generation failed" : ev.stop_reason;
      }
    }
    return index;
  }
  /// Waits up to `wait` for the next event of any stream; calls `on(prompt, event)` for it.
  template <class On>
  bool next_event(std::chrono::milliseconds wait, On&& on) {
    if (streams.size() == 1) {
      auto ev = streams[0]->next(wait);
      if (ev) on(0, *ev);
      return bool(ev);
    }
    // A batch: look at every stream without waiting, then nap briefly, until the deadline.
    const auto deadline = std::chrono::steady_clock::now() + wait;
    do {
      for (size_t p = 0; p < streams.size(); ++p) {
        if (streams[p]->done()) continue;
        if (auto ev = streams[p]->next(std::chrono::milliseconds(0))) {
          on(p, *ev);
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    } while (!all_done() && std::chrono::steady_clock::now() < deadline);
    return false;
  }
};

/// The runtime requests of a parsed request: one per completion prompt, or the rendered chat.
std::variant<std::vector<submit_request>, api_error> build_submits(const generate_context& ctx,
                                                                   const openai_request& r) {
  std::vector<submit_request> out;
  if (r.kind == endpoint::completions) {
    for (const auto& p : r.prompts) {
      submit_request s;
      if (const auto* text = std::get_if<std::string>(&p)) s.prompt = *text;
      else s.prompt_ids = std::get<std::vector<int32_t>>(p);
      s.params = r.params;
      out.push_back(std::move(s));
    }
    return out;
  }
  if (ctx.chat_template == nullptr && !ctx.chat_template_error.empty())
    return api_error{400, "the model's chat template cannot be used: " + ctx.chat_template_error,
                     "invalid_request_error", "messages", "chat_template_invalid"};
  auto rendered = render_chat_prompt(r, ctx.chat_template, ctx.rt->tokenizer_settings());
  if (auto* e = std::get_if<api_error>(&rendered)) return *e;
  submit_request s;
  s.add_special_tokens = false;  // the template writes its own bos
  s.params = r.params;
  if (r.max_tokens_given) {
    s.prompt = std::move(std::get<std::string>(rendered));
  } else {
    // No max_tokens: the rest of the context, which needs the prompt's length.
    auto ids = ctx.rt->tokenizer().encode(std::get<std::string>(rendered), false);
    if (!ids) return api_error{400, "the rendered chat prompt cannot be tokenised: " + ids.error().message};
    const int64_t room = ctx.rt->max_model_len() - int64_t(ids->size());
    s.params.max_tokens = room > 0 ? room : 1;
    s.prompt_ids = std::move(*ids);
  }
  out.push_back(std::move(s));
  return out;
}

/// Parses, validates and submits; on success the job holds its streams.
std::variant<std::shared_ptr<job>, api_error> start_job(const generate_context& ctx, endpoint kind,
                                                        const httplib::Request& http) {
  auto parsed = kind == endpoint::chat ? parse_chat_request(http.body) : parse_completion_request(http.body);
  if (auto* e = std::get_if<api_error>(&parsed)) return *e;
  auto& r = std::get<openai_request>(parsed);
  runtime& rt = *ctx.rt;
  if (!r.model.empty() && r.model != rt.served_model_name())
    return api_error{404, "The model `" + r.model + "` does not exist.", "invalid_request_error", "model",
                     "model_not_found"};
  if (auto ok = engine::validate(r.params.sampling, rt.tokenizer().vocab_size()); !ok)
    return api_error{400, ok.error().message, "invalid_request_error",
                     r.params.sampling.logit_bias.empty() ? "" : "logit_bias"};
  auto submits = build_submits(ctx, r);
  if (auto* e = std::get_if<api_error>(&submits)) return *e;

  auto j = std::make_shared<job>(http);
  j->meta = {kind, make_response_id(kind), int64_t(std::time(nullptr)), rt.served_model_name()};
  j->tok = &rt.tokenizer();
  j->req = std::move(r);
  j->in_flight = ctx.in_flight;
  ++*ctx.in_flight;
  for (auto& s : std::get<std::vector<submit_request>>(submits)) {
    std::string echo = j->req.echo ? (s.prompt_ids.empty() ? s.prompt : j->tok->decode(s.prompt_ids)) : "";
    auto stream = rt.submit(std::move(s));
    if (!stream) return from_runtime_error(stream.error());  // the job's end cancels the others
    j->streams.push_back(std::move(*stream));
    j->echo_texts.push_back(std::move(echo));
  }
  j->choices.resize(j->streams.size() * size_t(j->n()));
  j->started.resize(j->choices.size(), false);
  return j;
}

/// Puts the echoed prompt (and its logprobs, the first token's being null) before each choice.
void add_echo(job& j) {
  for (size_t p = 0; p < j.streams.size(); ++p) {
    std::vector<engine::logprobs_entry> lp;
    std::vector<bool> none;
    if (j.req.logprobs >= 0) {
      const auto ids = j.streams[p]->prompt_ids();
      const auto scored = j.streams[p]->prompt_logprobs();
      for (size_t i = 0; i < ids.size(); ++i) {
        engine::logprobs_entry e;
        if (i > 0 && i - 1 < scored.size()) e = scored[i - 1];
        e.chosen.token = ids[i];
        lp.push_back(std::move(e));
        none.push_back(i == 0 || i - 1 >= scored.size());
      }
    }
    for (int32_t k = 0; k < j.n(); ++k) {
      auto& c = j.choices[p * size_t(j.n()) + size_t(k)];
      c.text = j.echo_texts[p] + c.text;
      c.echo_length = j.echo_texts[p].size();
      c.logprobs.insert(c.logprobs.begin(), lp.begin(), lp.end());
      c.no_logprob.insert(c.no_logprob.begin(), none.begin(), none.end());
    }
  }
}

void answer_whole(const generate_context& ctx, job& j, httplib::Response& res) {
  while (!j.all_done()) {
    j.next_event(100ms, [&](size_t p, const stream_event& ev) { j.apply(p, ev); });
    if (j.client_left()) {
      j.cancel();  // nobody to answer
      return;
    }
  }
  if (j.failed) return write_error(res, api_error{500, j.error_message, "internal_error", "", "internal_error"});
  if (ctx.draining->load()) {
    for (const auto& c : j.choices)
      if (c.finish_reason == "abort")
        return write_error(res, api_error{503, "the server is shutting down", "service_unavailable", "",
                                          "service_unavailable"});
  }
  if (j.req.echo) add_echo(j);
  res.set_content(response_body(j.meta, j.choices, j.usage(), j.req.logprobs, *j.tok), "application/json");
}

/// Streams the job's events as server-sent events; returns false when the client has gone.
bool stream_step(const std::shared_ptr<job>& jp, httplib::DataSink& sink) {
  job& j = *jp;
  const bool usage_null = j.req.include_usage;
  const auto send = [&](const std::string& json) {
    const std::string ev = sse_event(json);
    return sink.write(ev.data(), ev.size());
  };
  // First chunks: the assistant role (chat) or the echoed prompt (completions with echo).
  for (size_t i = 0; i < j.choices.size(); ++i) {
    if (j.started[i]) continue;
    j.started[i] = true;
    const size_t p = i / size_t(j.n());
    if (j.meta.kind == endpoint::chat) {
      chunk_piece piece{int32_t(i), "", true};
      if (!send(chunk_json(j.meta, piece, -1, *j.tok, usage_null))) return false;
    } else if (j.req.echo && !j.echo_texts[p].empty()) {
      chunk_piece piece{int32_t(i), j.echo_texts[p]};
      j.choices[i].echo_length = j.echo_texts[p].size();
      j.choices[i].text = j.echo_texts[p];
      if (!send(chunk_json(j.meta, piece, -1, *j.tok, usage_null))) return false;
    }
  }
  if (j.all_done()) {
    if (j.failed) {
      send(to_json(api_error{500, j.error_message, "internal_error", "", "internal_error"}));
    } else if (j.req.include_usage && !send(usage_chunk_json(j.meta, j.usage()))) {
      return false;
    }
    static constexpr std::string_view done = "data: [DONE]\n\n";
    if (!sink.write(done.data(), done.size())) return false;
    sink.done();
    return true;
  }
  bool ok = true;
  j.next_event(200ms, [&](size_t p, const stream_event& ev) {
    const size_t offset = j.choices[p * size_t(j.n()) + size_t(ev.sample)].text.size();
    const size_t i = j.apply(p, ev);
    const bool has_logprobs = j.req.logprobs >= 0 && !ev.logprobs.empty();
    if (ev.text.empty() && !ev.finished && !has_logprobs) return;
    if (ev.finished && ev.finish_reason == "error") return;  // answered as an error event at the end
    chunk_piece piece{int32_t(i), ev.text, false, has_logprobs ? &ev.logprobs : nullptr, offset,
                      ev.finished ? std::string_view(j.choices[i].finish_reason) : std::string_view()};
    ok = send(chunk_json(j.meta, piece, j.req.logprobs, *j.tok, usage_null));
  });
  if (!ok) return false;
  return !j.client_left();
}

void answer_stream(std::shared_ptr<job> jp, httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [jp](size_t, httplib::DataSink& sink) {
        if (stream_step(jp, sink)) return true;
        jp->cancel();  // the client has gone: free its KV blocks now
        return false;
      },
      [jp](bool) { jp->cancel(); });
}

}  // namespace

void handle_generate(const generate_context& ctx, endpoint kind, const httplib::Request& req,
                     httplib::Response& res) {
  if (ctx.draining->load())
    return write_error(res, api_error{503, "the server is shutting down", "service_unavailable", "",
                                      "service_unavailable"});
  auto started = start_job(ctx, kind, req);
  if (auto* e = std::get_if<api_error>(&started)) return write_error(res, *e, ctx.retry_after_s);
  auto j = std::move(std::get<std::shared_ptr<job>>(started));
  if (j->req.stream) return answer_stream(std::move(j), res);
  answer_whole(ctx, *j, res);
}

}  // namespace troupe::net
