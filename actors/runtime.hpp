// The in-process runtime: starts the actor system (tokenizer pool, scheduler, executors) over one
// model and takes requests from any thread. The HTTP server (net/) and embedding applications
// (examples/embed) use only this header.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/error.hpp"
#include "config/model_config.hpp"
#include "engine/core/llm.hpp"
#include "engine/core/request.hpp"
#include "kernels/backend.hpp"

namespace caf {
class actor_system;
}

namespace troupe {

/// How the runtime is started.
struct runtime_options {
  std::filesystem::path model_dir;      ///< a Hugging Face folder (the bundled model by default in the CLI)
  std::string served_model_name;        ///< empty: the folder's name
  engine::llm_options engine;           ///< kv_cache_blocks, max_num_seqs, max_num_batched_tokens, ...
  int32_t max_waiting = 256;            ///< requests admitted but not yet running, at most (then 429)
  int64_t max_queued_prompt_tokens = 0; ///< prompt tokens waiting, at most; 0: 64 x max_num_batched_tokens
  int32_t tokenizer_workers = 2;        ///< tokenizer actors in the pool
  int32_t steps_in_flight = 2;          ///< scheduler steps outstanding per executor (1: one at a time)
  int32_t cpu_threads = 0;              ///< CPU backend threads; 0: every core
  /// Makes the backend of an executor (tests inject failing backends); empty: the CPU backend.
  std::function<std::unique_ptr<kernels::backend>()> backend_factory;
  /// Run inside an application's own actor system instead of a private one (it must outlive the
  /// runtime and have the troupe type-id block registered: see actors/messages.hpp).
  caf::actor_system* system = nullptr;
};

/// One request, as the HTTP layer or an application submits it.
struct submit_request {
  std::string prompt;                  ///< text, tokenised by the tokenizer pool unless prompt_ids is set
  std::vector<int32_t> prompt_ids;     ///< token ids as they are
  bool add_special_tokens = true;      ///< false for rendered chat templates (they hold their own bos)
  engine::request_params params;       ///< sampling, max_tokens, stop, n, ignore_eos, priority, logprobs
};

/// Something that happened to one of a request's samples, in order.
struct stream_event {
  int32_t sample = 0;                          ///< which of the n samples (0-based)
  std::vector<int32_t> token_ids;              ///< new output tokens since the last event of this sample
  std::string text;                            ///< new complete text (stop strings cut, never split UTF-8)
  std::vector<engine::logprobs_entry> logprobs;  ///< one per new token when params.logprobs >= 0
  bool finished = false;                       ///< this sample is done
  std::string finish_reason;                   ///< "stop", "length", "abort" or "error" when finished
  std::string stop_reason;                     ///< the matched stop string or token id; the error message
};

/// The consumer's side of one submitted request. Events of all samples arrive on one queue; the
/// stream is done once every sample has finished and every event has been taken. Thread-safe:
/// one thread takes events while any thread may cancel.
class request_stream {
 public:
  virtual ~request_stream() = default;
  /// The next event, waiting up to `timeout`; nothing when none came in time.
  virtual std::optional<stream_event> next(std::chrono::milliseconds timeout) = 0;
  /// True once every sample finished and all events were taken.
  virtual bool done() const = 0;
  /// Cancels the request (a client left): its KV blocks are freed within one scheduler step and a
  /// final event with finish_reason "abort" follows for every unfinished sample.
  virtual void cancel() = 0;
  /// The prompt's token ids (known once tokenised: wait for the first event); and per-prompt-token
  /// logprobs when params.prompt_logprobs >= 0.
  virtual std::vector<int32_t> prompt_ids() const = 0;
  virtual std::vector<engine::logprobs_entry> prompt_logprobs() const = 0;
};

/// A histogram with fixed upper bounds (Prometheus style: counts are per bucket, not cumulative).
struct histogram {
  std::vector<double> bounds;   ///< upper bounds in seconds, increasing; the last bucket is +Inf
  std::vector<uint64_t> counts; ///< bounds.size() + 1 buckets
  double sum = 0.0;
  uint64_t count = 0;
};

/// What /metrics exposes, read at one moment.
struct runtime_metrics {
  int64_t requests_running = 0;
  int64_t requests_waiting = 0;
  std::map<std::string, uint64_t> requests_finished;  ///< by finish reason
  uint64_t requests_rejected = 0;                     ///< 429s and 400s from the runtime
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  uint64_t prefix_cache_queries = 0;  ///< prompt tokens looked up in the prefix cache
  uint64_t prefix_cache_hits = 0;     ///< of which found
  uint64_t preemptions = 0;
  uint64_t prompt_tokens = 0;
  uint64_t generation_tokens = 0;
  histogram time_to_first_token, inter_token_latency, e2e_latency, queue_time;
  std::map<std::string, int64_t> mailbox_depth;  ///< per actor ("scheduler", "executor-0", ...)
};

/// The running system. Every method may be called from any thread.
class runtime {
 public:
  virtual ~runtime() = default;

  /// Loads the model and starts the actors. Errors name the model folder and the problem.
  static expected<std::unique_ptr<runtime>> start(const runtime_options& options);

  /// Submits a request. Errors carry a kind: invalid_argument (bad parameters, a prompt longer than
  /// the context or the whole cache), resource_exhausted (admission limits reached: answer 429),
  /// unavailable (draining or not ready: 503).
  virtual expected<std::shared_ptr<request_stream>> submit(submit_request request) = 0;

  /// True once the model is loaded and the runtime admits requests (false while draining).
  virtual bool ready() const = 0;
  /// Stops admitting (submit answers unavailable), lets in-flight requests finish for up to `grace`,
  /// then cancels what remains. Returns when every request has ended.
  virtual void drain(std::chrono::milliseconds grace) = 0;

  virtual runtime_metrics metrics() const = 0;
  virtual const config::model_config& model_config() const = 0;
  virtual const config::tokenizer_settings& tokenizer_settings() const = 0;
  /// The tokenizer (for chat templates' special tokens and usage counts); safe to use from any thread.
  virtual const engine::tokenizer& tokenizer() const = 0;
  virtual const std::string& served_model_name() const = 0;
  /// The longest prompt + output the runtime accepts, in tokens.
  virtual int64_t max_model_len() const = 0;
};

}  // namespace troupe
