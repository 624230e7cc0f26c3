// Request actor: tokenise, admit, then detokenise each sample's tokens into the client's stream.
#include "actors/request_actor.hpp"

#include <vector>

#include "actors/shared.hpp"
#include "actors/stream.hpp"
#include "engine/core/output_processor.hpp"

namespace troupe::actors {

namespace {

struct sample_state {
  bool finished = false;
  int64_t last_token_ns = 0;
};

struct request_state {
  runtime_shared* shared = nullptr;
  std::shared_ptr<stream_impl> stream;
  std::shared_ptr<std::promise<status_reply>> admitted;
  submit_request in;
  int64_t id = 0;
  int64_t submit_ns = 0;
  bool first_token_seen = false;
  bool cancelled = false;
  int32_t unfinished = 0;
  std::vector<sample_state> samples;
  std::unique_ptr<engine::output_processor> texts;  // keyed by sample index
};

using pointer = request_actor::stateful_pointer<request_state>;

void answer(request_state& st, status_reply r) {
  if (st.admitted) st.admitted->set_value(std::move(r));
  st.admitted.reset();
}

void admit(pointer self, std::vector<int32_t> ids) {
  auto& st = self->state;
  st.stream->set_prompt_ids(ids);
  admit_msg m;
  m.request = st.id;
  m.prompt_ids = std::move(ids);
  m.params = st.in.params;
  m.submit_ns = st.submit_ns;
  m.client = caf::actor_cast<caf::actor>(self);
  self->request(st.shared->scheduler_handle, caf::infinite, admit_atom_v, std::move(m))
      .then(
          [self](status_reply& r) {
            const bool ok = r.ok;
            answer(self->state, std::move(r));
            if (!ok) self->quit();
          },
          [self](caf::error& e) {
            answer(self->state, {false, int(errc::unavailable), "the scheduler is gone: " + to_string(e)});
            self->quit();
          });
}

// One sample's news: text through the output processor, then one stream event.
void apply(pointer self, const sample_update& u, int64_t now) {
  auto& st = self->state;
  if (u.sample < 0 || size_t(u.sample) >= st.samples.size()) return;
  sample_state& s = st.samples[size_t(u.sample)];
  if (s.finished) return;  // tokens of a step planned before the scheduler learned of a stop string
  auto& metrics = st.shared->metrics;
  if (!u.token_ids.empty()) {
    metrics.add_generation_tokens(u.token_ids.size());
    if (!st.first_token_seen) {
      st.first_token_seen = true;
      metrics.observe_ttft(double(now - st.submit_ns) * 1e-9);
    }
    if (s.last_token_ns != 0) metrics.observe_itl(double(now - s.last_token_ns) * 1e-9);
    s.last_token_ns = now;
  }
  auto d = st.texts->push(u.sample, u.token_ids, u.finished);
  stream_event ev;
  ev.sample = u.sample;
  ev.token_ids = u.token_ids;
  ev.logprobs = u.logprobs;
  ev.text = std::move(d.text);
  if (d.stopped) {
    ev.finished = true;
    ev.finish_reason = "stop";
    ev.stop_reason = d.stop_string;
    if (!u.finished) self->send(st.shared->scheduler_handle, stop_atom_v, st.id, u.sample, d.stop_string);
  } else if (u.finished) {
    ev.finished = true;
    ev.finish_reason = u.finish_reason;
    ev.stop_reason = u.stop_reason;
  }
  if (ev.finished) {
    s.finished = true;
    metrics.finished(ev.finish_reason);
    // Recorded before the last event goes out, so a consumer that saw done() sees it counted.
    if (--st.unfinished == 0) metrics.observe_e2e(double(now - st.submit_ns) * 1e-9);
  }
  st.stream->push(std::move(ev));
}

request_actor::behavior_type request_fn(pointer self, runtime_shared* shared, std::shared_ptr<stream_impl> stream,
                                        submit_request in, int64_t id, int64_t submit_ns,
                                        std::shared_ptr<std::promise<status_reply>> admitted) {
  auto& st = self->state;
  st.shared = shared;
  st.stream = std::move(stream);
  st.admitted = std::move(admitted);
  st.in = std::move(in);
  st.id = id;
  st.submit_ns = submit_ns;
  st.unfinished = st.in.params.n;
  st.samples.resize(size_t(st.in.params.n));
  st.texts = std::make_unique<engine::output_processor>(shared->tok);
  for (int32_t s = 0; s < st.in.params.n; ++s) st.texts->add(s, st.in.params.stop);
  self->attach_functor([shared] {
    shared->request_ended();
    shared->actor_ended();
  });
  if (!st.in.prompt_ids.empty()) {
    admit(self, std::move(st.in.prompt_ids));
  } else {
    const size_t worker = shared->pick_tokenizer();
    self->request(shared->tokenizers[worker], caf::infinite, tokenize_atom_v, st.in.prompt, st.in.add_special_tokens)
        .then(
            [self](tokenize_reply& r) {
              if (!r.error.empty()) {
                answer(self->state, {false, int(errc::invalid_argument), "cannot tokenize the prompt: " + r.error});
                self->quit();
              } else {
                admit(self, std::move(r.ids));
              }
            },
            [self](caf::error& e) {
              answer(self->state, {false, int(errc::unavailable), "the tokenizer is gone: " + to_string(e)});
              self->quit();
            });
  }
  return {
      [self](request_update& u) {
        auto& st = self->state;
        const int64_t now = now_ns();
        if (u.queue_ns >= 0) st.shared->metrics.observe_queue(double(u.queue_ns) * 1e-9);
        if (!u.prompt_logprobs.empty()) st.stream->add_prompt_logprobs(u.prompt_logprobs);
        for (const sample_update& s : u.samples) apply(self, s, now);
        if (st.unfinished == 0) self->quit();
      },
      [self](cancel_atom) {
        auto& st = self->state;
        if (st.cancelled) return;
        st.cancelled = true;
        self->send(st.shared->scheduler_handle, cancel_atom_v, st.id);
      },
  };
}

}  // namespace

request_actor spawn_request(caf::actor_system& sys, runtime_shared& shared, std::shared_ptr<stream_impl> stream,
                            submit_request request, int64_t id, int64_t submit_ns,
                            std::shared_ptr<std::promise<status_reply>> admitted) {
  shared.request_started();
  shared.actor_started();
  return sys.spawn(request_fn, &shared, std::move(stream), std::move(request), id, submit_ns, std::move(admitted));
}

}  // namespace troupe::actors
