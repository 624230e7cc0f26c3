// Scheduler actor: admission, up to steps_in_flight steps outstanding per executor, token routing,
// cancellation, executor supervision.
#include "actors/scheduler_actor.hpp"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "actors/executor_actor.hpp"
#include "actors/shared.hpp"
#include "engine/core/scheduler.hpp"

namespace troupe::actors {

namespace {

using engine::request_id;

// One sample of a request: an engine request (its id changes when it is requeued after a failure).
struct child_info {
  int64_t request = 0;
  int32_t sample = 0;
  int32_t prompt_len = 0;
  bool scheduled = false;  // has been in a step (no longer counts against the admission limits)
};

struct client_info {
  caf::actor actor;
  std::vector<request_id> children;  // by sample; -1 once finished
  int64_t submit_ns = 0;
  bool queue_reported = false;
};

struct scheduler_state {
  runtime_shared* shared = nullptr;
  std::atomic<int64_t>* depth = nullptr;
  std::unique_ptr<engine::scheduler> sched;
  std::unordered_map<request_id, child_info> children;
  std::unordered_map<int64_t, client_info> clients;
  request_id next_id = 0;
  int64_t queued_tokens = 0;
  bool draining = false;
  bool failed = false;
  // The executor and its supervision.
  executor_actor exec;
  uint64_t generation = 0;
  bool exec_ready = false;
  int32_t restarts = 0;
  std::deque<engine::schedule_output> in_flight;  // sent to the executor, in the order planned
  std::optional<caf::typed_response_promise<status_reply>> start_promise;
  scheduler_gauges carried;  // counters of engine schedulers replaced after executor failures
};

using pointer = scheduler_actor::stateful_pointer<scheduler_state>;
using updates = std::map<int64_t, request_update>;

void seen(pointer self) { self->state.depth->store(int64_t(self->mailbox().size())); }

void publish(scheduler_state& st) {
  const auto kv = st.sched->kv().stats();
  scheduler_gauges g;
  g.running = int64_t(st.sched->num_running());
  g.waiting = int64_t(st.sched->num_waiting());
  g.kv_blocks_used = kv.used_blocks;
  g.kv_blocks_total = kv.total_blocks;
  g.prefix_cache_queries = st.carried.prefix_cache_queries + uint64_t(kv.prefix_queries);
  g.prefix_cache_hits = st.carried.prefix_cache_hits + uint64_t(kv.prefix_hits);
  g.preemptions = st.carried.preemptions + st.sched->stats().preemptions;
  st.shared->metrics.set_gauges(g);
}

// A child leaves the admission counts when it is first scheduled or ends before that.
void unqueue(scheduler_state& st, child_info& c) {
  if (c.scheduled) return;
  c.scheduled = true;
  st.shared->queued.fetch_sub(1);
  st.queued_tokens -= c.prompt_len;
}

// Forgets a finished child; its final update goes into `out`.
void end_child(scheduler_state& st, request_id id, sample_update u, updates& out) {
  auto it = st.children.find(id);
  if (it == st.children.end()) return;
  unqueue(st, it->second);
  const int64_t req = it->second.request;
  u.sample = it->second.sample;
  u.finished = true;
  st.children.erase(it);
  out[req].samples.push_back(std::move(u));
}

void send_updates(pointer self, updates& out) {
  auto& st = self->state;
  for (auto& [req, u] : out) {
    auto c = st.clients.find(req);
    if (c == st.clients.end()) continue;
    for (const sample_update& s : u.samples)
      if (s.finished) c->second.children[size_t(s.sample)] = -1;
    self->send(caf::actor_cast<request_actor>(c->second.actor), std::move(u));
    if (std::all_of(c->second.children.begin(), c->second.children.end(), [](request_id x) { return x < 0; }))
      st.clients.erase(c);
  }
  out.clear();
}

// Ends every live child with an error (the executor is gone for good, or nothing can be placed).
void fail_all(pointer self, const std::string& why) {
  auto& st = self->state;
  updates out;
  std::vector<request_id> ids;
  for (const auto& [id, c] : st.children) ids.push_back(id);
  for (request_id id : ids) {
    st.sched->finish_request(id, engine::request_status::finished_error, why);
    end_child(st, id, {0, {}, {}, true, "error", why}, out);
  }
  send_updates(self, out);
  publish(st);
}

void on_outcome(pointer self, step_outcome& o);

void send_step(pointer self, engine::schedule_output out) {
  auto& st = self->state;
  const int64_t now = now_ns();
  for (const auto& d : out.new_requests) {
    auto c = st.children.find(d.id);
    if (c == st.children.end()) continue;
    unqueue(st, c->second);
    auto cl = st.clients.find(c->second.request);
    if (cl != st.clients.end() && !cl->second.queue_reported) {
      cl->second.queue_reported = true;
      request_update u;
      u.queue_ns = now - cl->second.submit_ns;
      self->send(caf::actor_cast<request_actor>(cl->second.actor), std::move(u));
    }
  }
  st.in_flight.push_back(out);
  self->request(st.exec, caf::infinite, execute_atom_v, step_plan{st.generation, std::move(out)})
      .then([self](step_outcome& o) { on_outcome(self, o); },
            [](caf::error&) {});  // a dead executor is handled by the down handler
}

// Plans and sends steps while the executor has fewer than steps_in_flight outstanding. The engine's
// scheduler counts a planned step's tokens as computed and its samples as placeholders, so step N+1
// goes out while step N runs; the executor runs them in the order sent (one mailbox, one thread).
void kick(pointer self) {
  auto& st = self->state;
  const auto credits = size_t(st.shared->options.steps_in_flight);
  while (st.exec_ready && !st.failed && st.in_flight.size() < credits && st.sched->has_unfinished()) {
    engine::schedule_output out = st.sched->schedule();
    if (out.empty()) {
      // A request alone always fits, so with nothing in flight the engine is stuck: never spin.
      if (st.in_flight.empty()) fail_all(self, "the scheduler could not place the request");
      // Otherwise the rest waits for results; the runner must still forget finished requests.
      if (!st.in_flight.empty() && !out.finished_request_ids.empty()) send_step(self, std::move(out));
      return;
    }
    send_step(self, std::move(out));
  }
}

void on_outcome(pointer self, step_outcome& o) {
  auto& st = self->state;
  seen(self);
  if (o.generation != st.generation || st.in_flight.empty()) return;
  engine::schedule_output plan = std::move(st.in_flight.front());
  st.in_flight.pop_front();
  TROUPE_CHECK(plan.step == o.step);  // results come back in the order sent
  updates out;
  if (!o.ok) {  // the model rejected the step: its requests fail, the others go on
    for (const engine::request_output& r : st.sched->fail_step(plan, o.error))
      end_child(st, r.id, {0, {}, {}, true, "error", o.error}, out);
    send_updates(self, out);
    kick(self);
    publish(st);
    return;
  }
  auto outs = st.sched->update_from_output(plan, o.result.sampled);
  kick(self);  // the next steps go out before this one's tokens are routed
  std::unordered_map<request_id, size_t> entry;
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    entry[plan.scheduled[i].id] = i;
    auto c = st.children.find(plan.scheduled[i].id);
    if (c != st.children.end() && c->second.sample == 0 && i < o.result.prompt_logprobs.size() &&
        !o.result.prompt_logprobs[i].empty()) {
      auto& lp = out[c->second.request].prompt_logprobs;
      lp.insert(lp.end(), o.result.prompt_logprobs[i].begin(), o.result.prompt_logprobs[i].end());
    }
  }
  for (engine::request_output& r : outs) {
    auto c = st.children.find(r.id);
    if (c == st.children.end()) continue;
    sample_update u;
    u.token_ids = std::move(r.new_token_ids);
    const size_t e = entry.at(r.id);
    if (!u.token_ids.empty() && e < o.result.logprobs.size()) u.logprobs = o.result.logprobs[e];
    if (r.finished) {
      u.finish_reason = std::string(engine::to_string(r.reason));
      u.stop_reason = r.stop_reason;
      end_child(st, r.id, std::move(u), out);
    } else {
      u.sample = c->second.sample;
      out[c->second.request].samples.push_back(std::move(u));
    }
  }
  send_updates(self, out);
  publish(st);
}

// The dead executor took every block's K/V with it, so the engine's block pool and prefix cache
// describe memory that no longer exists: a fresh engine scheduler takes every live request again,
// in arrival order, each starting from its tokens so far (recompute). Greedy outputs are unchanged;
// a seeded sample's random stream restarts from its seed.
void requeue_all(pointer self) {
  auto& st = self->state;
  std::unique_ptr<engine::scheduler> old = std::move(st.sched);
  const auto kv = old->kv().stats();
  st.carried.preemptions += old->stats().preemptions;
  st.carried.prefix_cache_queries += uint64_t(kv.prefix_queries);
  st.carried.prefix_cache_hits += uint64_t(kv.prefix_hits);
  st.sched = std::make_unique<engine::scheduler>(st.shared->scheduler);
  std::vector<request_id> ids;
  for (const auto& [id, c] : st.children) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  updates out;
  for (request_id id : ids) {
    const engine::request* r = old->find(id);
    if (r == nullptr) continue;
    engine::request_params p = r->params();
    p.max_tokens -= r->num_output_tokens();
    child_info c = st.children.at(id);
    if (c.scheduled) p.prompt_logprobs = -1;  // rows already scored were sent
    std::vector<int32_t> tokens = r->all_token_ids();
    const request_id nid = st.next_id++;
    st.children.erase(id);
    st.children[nid] = c;
    auto cl = st.clients.find(c.request);
    if (cl != st.clients.end()) cl->second.children[size_t(c.sample)] = nid;
    auto ok = st.sched->add_request(engine::request(nid, std::move(tokens), p, st.shared->eos));
    if (!ok) end_child(st, nid, {0, {}, {}, true, "error", ok.error().message}, out);
  }
  send_updates(self, out);
}

void start_executor(pointer self) {
  auto& st = self->state;
  st.exec = spawn_executor(self, *st.shared, "executor-0");
  self->monitor(st.exec);
  const uint64_t gen = st.generation;
  self->request(st.exec, caf::infinite, init_atom_v)
      .then(
          [self, gen](status_reply& r) {
            auto& st = self->state;
            if (gen != st.generation) return;
            if (r.ok) {
              st.exec_ready = true;
              // At start-up nothing is admitted yet: take the KV cache size the executor settled on.
              if (st.start_promise) {
                st.sched = std::make_unique<engine::scheduler>(st.shared->scheduler);
                publish(st);
                st.start_promise->deliver(r);
              }
              st.start_promise.reset();
              kick(self);
              return;
            }
            st.failed = true;
            st.shared->failed = true;
            if (st.start_promise) st.start_promise->deliver(r);
            st.start_promise.reset();
            fail_all(self, "the executor cannot load the model: " + r.message);
            self->send_exit(st.exec, caf::exit_reason::user_shutdown);
          },
          [](caf::error&) {});
}

void on_down(pointer self, caf::down_msg& m) {
  auto& st = self->state;
  if (m.source != st.exec.address()) return;
  st.exec_ready = false;
  st.in_flight.clear();  // every step in flight died with it: requeue_all takes their requests once
  ++st.generation;
  const std::string why = "the executor failed: " + to_string(m.reason);
  const bool give_up = st.start_promise || ++st.restarts > max_executor_restarts;
  std::fprintf(stderr, "troupe: %s; %s\n", why.c_str(),
               give_up ? "failing every request" : "restarting it and recomputing its requests");
  if (give_up) {
    st.failed = true;
    st.shared->failed = true;
    if (st.start_promise) st.start_promise->deliver(status_reply{false, int(errc::internal), why});
    st.start_promise.reset();
    fail_all(self, why + " (gave up after " + std::to_string(st.restarts - 1) + " restarts)");
    return;
  }
  requeue_all(self);
  start_executor(self);
  publish(st);
}

status_reply admit(pointer self, admit_msg& m) {
  auto& st = self->state;
  if (st.draining || st.failed)
    return {false, int(errc::unavailable), st.failed ? "the executor has failed" : "the runtime is draining"};
  const int32_t n = m.params.n;
  const int64_t len = int64_t(m.prompt_ids.size());
  for (int32_t t : m.prompt_ids)
    if (t < 0 || t >= st.shared->model.vocab_size)
      return {false, int(errc::invalid_argument),
              make_error("prompt token id ", t, " is outside the vocabulary (size ", st.shared->model.vocab_size, ")")
                  .message};
  const int64_t limit = st.shared->max_queued_prompt_tokens;
  if (st.queued_tokens > 0 && st.queued_tokens + len * n > limit)
    return {false, int(errc::resource_exhausted),
            make_error("too many prompt tokens are waiting (", st.queued_tokens, " queued, limit ", limit, ")")
                .message};
  client_info client;
  client.actor = m.client;
  client.submit_ns = m.submit_ns;
  for (int32_t c = 0; c < n; ++c) {
    engine::request_params p = m.params;
    p.n = 1;
    if (p.sampling.seed && c > 0) p.sampling.seed = *p.sampling.seed + uint64_t(c);
    const request_id id = st.next_id++;
    auto ok = st.sched->add_request(engine::request(id, m.prompt_ids, p, st.shared->eos));
    if (!ok) {
      for (request_id child : client.children) st.sched->abort_request(child);
      return {false, int(errc::invalid_argument), ok.error().message};
    }
    client.children.push_back(id);
  }
  for (int32_t c = 0; c < n; ++c)
    st.children[client.children[size_t(c)]] = child_info{m.request, c, int32_t(len), false};
  st.queued_tokens += len * n;
  st.clients[m.request] = std::move(client);
  st.shared->metrics.add_prompt_tokens(uint64_t(len));
  kick(self);
  publish(st);
  return {};
}

void cancel(pointer self, int64_t req) {
  auto& st = self->state;
  auto cl = st.clients.find(req);
  if (cl == st.clients.end()) return;
  updates out;
  for (request_id id : cl->second.children) {
    if (id < 0) continue;
    st.sched->abort_request(id, "cancelled");
    end_child(st, id, {0, {}, {}, true, "abort", "cancelled"}, out);
  }
  send_updates(self, out);
  publish(st);
}

scheduler_actor::behavior_type scheduler_fn(pointer self, runtime_shared* shared) {
  auto& st = self->state;
  st.shared = shared;
  st.depth = shared->metrics.add_mailbox("scheduler");
  st.sched = std::make_unique<engine::scheduler>(shared->scheduler);
  self->attach_functor([shared] { shared->actor_ended(); });
  self->set_down_handler([self](caf::down_msg& m) { on_down(self, m); });
  self->set_exit_handler([self](caf::exit_msg& m) {
    if (self->state.exec) self->send_exit(self->state.exec, m.reason);
    self->quit(m.reason);
  });
  publish(st);
  return {
      [self](start_atom) -> caf::typed_response_promise<status_reply> {
        auto rp = self->make_response_promise<status_reply>();
        self->state.start_promise = rp;
        start_executor(self);
        return rp;
      },
      [self](admit_atom, admit_msg& m) {
        seen(self);
        return admit(self, m);
      },
      [self](cancel_atom, int64_t req) {
        seen(self);
        cancel(self, req);
      },
      [self](stop_atom, int64_t req, int32_t sample, const std::string& stop) {
        seen(self);
        auto& st = self->state;
        auto cl = st.clients.find(req);
        if (cl == st.clients.end() || sample < 0 || size_t(sample) >= cl->second.children.size()) return;
        const request_id id = cl->second.children[size_t(sample)];
        if (id < 0) return;
        st.sched->finish_request(id, engine::request_status::finished_stopped, stop);
        updates ignored;  // the request actor already ended the sample
        end_child(st, id, {}, ignored);
        cl->second.children[size_t(sample)] = -1;
        if (std::all_of(cl->second.children.begin(), cl->second.children.end(), [](request_id x) { return x < 0; }))
          st.clients.erase(cl);
        publish(st);
      },
      [self](drain_atom) { self->state.draining = true; },
      [self](cancel_all_atom) {
        std::vector<int64_t> reqs;
        for (const auto& [req, c] : self->state.clients) reqs.push_back(req);
        for (int64_t req : reqs) cancel(self, req);
      },
  };
}

}  // namespace

scheduler_actor spawn_scheduler(caf::actor_system& sys, runtime_shared& shared) {
  shared.actor_started();
  return sys.spawn(scheduler_fn, &shared);
}

}  // namespace troupe::actors
