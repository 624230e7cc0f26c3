// runtime::start and the runtime's methods: the bridge between caller threads and the actors.
#include "actors/runtime.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <future>
#include <limits>

#include "actors/messages.hpp"
#include "actors/request_actor.hpp"
#include "actors/scheduler_actor.hpp"
#include "actors/shared.hpp"
#include "actors/stream.hpp"
#include "actors/tokenizer_actor.hpp"

namespace troupe {

namespace {

using namespace troupe::actors;


// Owns the actor system (when private) and the state the actors share. Streams hold it weakly so
// that a late cancel() after shutdown does nothing.
struct runtime_core {
  runtime_shared shared;  // declared first: it outlives the actor system
  std::unique_ptr<caf::actor_system_config> own_config;  // the system keeps a reference to it
  std::unique_ptr<caf::actor_system> own_system;
  caf::actor_system* sys = nullptr;
  std::atomic<int64_t> next_id{0};
  std::atomic<bool> stopped{false};

  void stop() {
    if (stopped.exchange(true)) return;
    if (shared.scheduler_handle) caf::anon_send_exit(shared.scheduler_handle, caf::exit_reason::user_shutdown);
    for (auto& t : shared.tokenizers) caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
    shared.wait_actors();
  }
  ~runtime_core() { stop(); }
};

class runtime_impl final : public runtime {
 public:
  explicit runtime_impl(std::shared_ptr<runtime_core> core) : core_(std::move(core)) {}

  ~runtime_impl() override {
    drain(std::chrono::milliseconds(0));
    core_->stop();
  }

  expected<std::shared_ptr<request_stream>> submit(submit_request request) override {
    runtime_shared& sh = core_->shared;
    if (!sh.accepting.load() || sh.failed.load())
      return make_error_code(errc::unavailable, sh.failed ? "the executor has failed"
                                                          : "the runtime is not admitting requests (draining)");
    if (auto bad = check(request); !bad.message.empty()) {
      sh.metrics.rejected();
      return bad;
    }
    const int32_t n = request.params.n;
    if (sh.queued.fetch_add(n) + n > sh.options.max_waiting) {
      sh.queued.fetch_sub(n);
      sh.metrics.rejected();
      return make_error_code(errc::resource_exhausted, "too many requests are waiting (max_waiting ",
                             sh.options.max_waiting, ")");
    }
    std::weak_ptr<runtime_core> weak = core_;
    auto stream = std::make_shared<stream_impl>(n, nullptr);
    auto admitted = std::make_shared<std::promise<status_reply>>();
    auto answer = admitted->get_future();
    const int64_t id = core_->next_id.fetch_add(1);
    sh.metrics.admitting().fetch_add(1);
    auto actor = spawn_request(*core_->sys, sh, stream, std::move(request), id, now_ns(), std::move(admitted));
    auto target = caf::actor_cast<caf::weak_actor_ptr>(actor);
    stream->set_cancel([weak, target] {
      auto core = weak.lock();
      if (!core || core->stopped) return;
      if (auto strong = target.lock()) caf::anon_send(caf::actor_cast<request_actor>(strong), cancel_atom_v);
    });
    status_reply r;
    try {
      r = answer.get();
    } catch (const std::future_error&) {
      r = {false, int(errc::internal), "the request actor ended before admitting the request"};
    }
    sh.metrics.admitting().fetch_sub(1);
    if (!r.ok) {
      sh.queued.fetch_sub(n);
      if (errc(r.code) != errc::unavailable) sh.metrics.rejected();  // 429s and 400s
      return make_error_code(errc(r.code), r.message);
    }
    return std::shared_ptr<request_stream>(std::move(stream));
  }

  bool ready() const override { return core_->shared.accepting.load() && !core_->shared.failed.load(); }

  void drain(std::chrono::milliseconds grace) override {
    runtime_shared& sh = core_->shared;
    sh.accepting = false;
    if (!sh.scheduler_handle || core_->stopped) return;
    caf::anon_send(sh.scheduler_handle, drain_atom_v);
    // Clamped so that now + grace cannot overflow (a caller may pass milliseconds::max()).
    const auto g = std::clamp(grace, std::chrono::milliseconds(0), std::chrono::milliseconds(std::chrono::hours(24 * 365)));
    if (sh.wait_requests(std::chrono::steady_clock::now() + g)) return;
    caf::anon_send(sh.scheduler_handle, cancel_all_atom_v);
    while (!sh.wait_requests(std::chrono::steady_clock::now() + std::chrono::seconds(1))) {
    }
  }

  runtime_metrics metrics() const override { return core_->shared.metrics.snapshot(); }
  const config::model_config& model_config() const override { return core_->shared.model; }
  const config::tokenizer_settings& tokenizer_settings() const override { return core_->shared.tokenizer_settings; }
  const engine::tokenizer& tokenizer() const override { return core_->shared.tok; }
  const std::string& served_model_name() const override { return core_->shared.options.served_model_name; }
  int64_t max_model_len() const override { return core_->shared.max_len; }

 private:
  // Parameter checks that need no tokenisation: invalid_argument errors, at once.
  error check(const submit_request& r) const {
    const runtime_shared& sh = core_->shared;
    const auto& p = r.params;
    auto bad = [](auto&&... parts) { return make_error_code(errc::invalid_argument, parts...); };
    if (p.n < 1 || p.n > engine::max_samples) return bad("n must be within [1, ", engine::max_samples, "], got ", p.n);
    if (p.n > sh.options.max_waiting)
      return bad("n (", p.n, ") exceeds the samples the server queues at once (max_waiting ", sh.options.max_waiting, ")");
    if (p.max_tokens < 1) return bad("max_tokens must be at least 1, got ", p.max_tokens);
    if (auto ok = engine::validate(p.sampling, sh.model.vocab_size); !ok) return bad(ok.error().message);
    if (p.logprobs < -1 || p.logprobs > engine::max_logprobs)
      return bad("logprobs must be within [0, ", engine::max_logprobs, "] (or -1: none), got ", p.logprobs);
    if (p.prompt_logprobs < -1 || p.prompt_logprobs > engine::max_logprobs)
      return bad("prompt_logprobs must be within [0, ", engine::max_logprobs, "] (or -1: none), got ",
                 p.prompt_logprobs);
    if (r.prompt_ids.empty() && r.prompt.empty()) return bad("the prompt is empty");
    for (int32_t t : r.prompt_ids)
      if (t < 0 || t >= sh.model.vocab_size)
        return bad("prompt token id ", t, " is outside the vocabulary (size ", sh.model.vocab_size, ")");
    if (!r.prompt_ids.empty() && int64_t(r.prompt_ids.size()) >= sh.max_len)
      return bad("the prompt has ", r.prompt_ids.size(), " tokens but at most ", sh.max_len - 1,
                 " fit with room to generate");
    return {};
  }

  std::shared_ptr<runtime_core> core_;
};

}  // namespace

expected<std::unique_ptr<runtime>> runtime::start(const runtime_options& options) {
  auto core = std::make_shared<runtime_core>();
  runtime_shared& sh = core->shared;
  sh.options = options;
  const auto& dir = options.model_dir;
  auto cfg = config::load_model_config(dir);
  if (!cfg) return cfg.error();
  sh.model = std::move(*cfg);
  auto settings = config::load_tokenizer_settings(dir);
  if (!settings) return settings.error();
  sh.tokenizer_settings = std::move(*settings);
  auto tok = engine::tokenizer::load(dir);
  if (!tok) return tok.error();
  sh.tok = std::move(*tok);
  auto so = engine::make_scheduler_options(sh.model, options.engine);
  if (!so) return make_error(dir, ": ", so.error().message);
  sh.scheduler = *so;  // the executor may size the KV cache anew (a GPU); max_len follows after start
  sh.max_queued_prompt_tokens = options.max_queued_prompt_tokens > 0
                                    ? options.max_queued_prompt_tokens
                                    : int64_t{64} * so->max_num_batched_tokens;
  sh.eos.assign(sh.model.eos_token_ids.begin(), sh.model.eos_token_ids.end());
  if (sh.options.served_model_name.empty()) {
    const auto name = dir.filename().empty() ? dir.parent_path().filename() : dir.filename();
    sh.options.served_model_name = name.string();
  }
  if (options.max_queued_prompt_tokens < 0)
    return make_error("max_queued_prompt_tokens must not be negative, got ", options.max_queued_prompt_tokens);
  if (options.steps_in_flight < 1)
    return make_error("steps_in_flight must be at least 1, got ", options.steps_in_flight);
  if (options.max_waiting < 1) return make_error("max_waiting must be at least 1, got ", options.max_waiting);
  if (options.tokenizer_workers < 1)
    return make_error("tokenizer_workers must be at least 1, got ", options.tokenizer_workers);

  if (options.system != nullptr) {
    core->sys = options.system;
  } else {
    core->own_config = std::make_unique<caf::actor_system_config>();
    core->own_config->add_message_types<caf::id_block::troupe>();
    core->own_system = std::make_unique<caf::actor_system>(*core->own_config);
    core->sys = core->own_system.get();
  }
  const auto workers = size_t(options.tokenizer_workers);
  sh.tokenizer_load = std::make_unique<std::atomic<int32_t>[]>(workers);
  for (size_t i = 0; i < workers; ++i) sh.tokenizers.push_back(spawn_tokenizer(*core->sys, sh, i));
  sh.scheduler_handle = spawn_scheduler(*core->sys, sh);

  status_reply started{false, int(errc::internal), "no answer from the scheduler"};
  {
    caf::scoped_actor self{*core->sys};
    self->request(sh.scheduler_handle, caf::infinite, start_atom_v)
        .receive([&](status_reply& r) { started = std::move(r); },
                 [&](caf::error& e) { started.message = "the scheduler failed: " + to_string(e); });
  }
  if (!started.ok) return make_error(dir, ": ", started.message);
  const engine::scheduler_options& sized = sh.scheduler;  // as the executor settled it
  sh.max_len = std::min<int64_t>(sized.max_model_len, int64_t{sized.num_blocks} * sized.block_size + 1);
  sh.accepting = true;
  return std::unique_ptr<runtime>(new runtime_impl(std::move(core)));
}

}  // namespace troupe
