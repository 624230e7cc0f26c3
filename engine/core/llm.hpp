// The offline API: many prompts with their parameters in, all their outputs back in input order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/error.hpp"
#include "engine/core/block_pool.hpp"
#include "engine/core/model_runner.hpp"
#include "engine/core/output_processor.hpp"
#include "engine/core/request.hpp"
#include "engine/core/scheduler.hpp"
#include "engine/model/llama_model.hpp"
#include "engine/tokenizer/tokenizer.hpp"

namespace troupe::engine {

/// Engine limits (the CLI flags of the same names).
struct llm_options {
  int64_t kv_cache_blocks = 0;            ///< 0: room for max_num_seqs full-length sequences, at most 256 MiB of K/V
                                          ///< (on a GPU: what gpu_memory_utilization leaves, see llm::create)
  double gpu_memory_utilization = 0.9;    ///< on a GPU, the fraction of its memory the engine may use in all
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
  int64_t max_model_len = 0;              ///< 0: the model's max_position_embeddings
  double admission_reserve = 0.7;         ///< scheduler_options::admission_reserve (0: admit what fits now)
  /// Scheduler steps in flight in llm::generate: above 1, the model runs on a thread of its own while
  /// the caller's thread plans the next step and processes the last one's outputs (the same outputs
  /// as 1). The actor runtime has its own knob, runtime_options::steps_in_flight.
  int32_t steps_in_flight = 2;
};

/// The scheduler limits these options give for a model: max_model_len defaults to the model's
/// context; kv_cache_blocks 0 sizes the cache for max_num_seqs full-length sequences, at most 256 MiB
/// of float32 K/V. Errors name the option out of range.
expected<scheduler_options> make_scheduler_options(const config::model_config& cfg, const llm_options& o);

/// Most samples (n) one input may ask for.
inline constexpr int32_t max_samples = 128;

/// One input: a text prompt (tokenised with add_special_tokens) or, when prompt_ids is not empty,
/// token ids as they are.
struct llm_request {
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  bool add_special_tokens = true;
  request_params params;
};

/// One of the n samples of an input.
struct llm_sample {
  std::vector<int32_t> output_ids;  ///< a stop or EOS token that ended it is not included
  std::string text;                 ///< detokenised output, cut before a matched stop string
  std::string finish_reason;        ///< "stop", "length", "abort" or "error"
  std::string stop_reason;          ///< the stop token id or stop string; the error message
  std::vector<logprobs_entry> logprobs;  ///< per output token, when params.logprobs >= 0
};

/// The result of one input. A rejected input has error set and no samples.
struct llm_output {
  std::vector<int32_t> prompt_ids;
  std::vector<llm_sample> samples;
  std::string error;
  std::vector<logprobs_entry> prompt_logprobs;  ///< per prompt token after the first, when asked for
};

/// Runs requests through the scheduler, the model runner and the output processor until all finish.
class llm {
 public:
  /// An engine over a loaded model and tokenizer (both must outlive it). `hash` replaces the
  /// block hash (tests force collisions with it). On a CUDA backend with kv_cache_blocks 0, the KV
  /// cache takes what is left of gpu_memory_utilization x the card's memory after what is in use now
  /// (weights) and an estimate of the step's activations (at most max_num_seqs full-length
  /// sequences); the capacity is logged to stderr (also in kv_cache_note()), and too little memory
  /// is an error with the numbers.
  static expected<std::unique_ptr<llm>> create(llama_model& model, const tokenizer& tok,
                                               const llm_options& options,
                                               block_hash_fn hash = xxh3_block_hash);

  /// Generates for every request; outputs are in input order.
  std::vector<llm_output> generate(std::span<const llm_request> requests);

  const scheduler& engine_scheduler() const { return *sched_; }
  const scheduler_options& options() const { return sched_->options(); }
  /// Steps run and tokens computed by generate calls so far.
  uint64_t steps() const { return steps_; }
  uint64_t computed_tokens() const { return tokens_; }
  /// Called with each step the model ran, on generate's thread (a benchmark derives per-step
  /// floors from the steps' sizes); empty: none.
  void set_step_observer(std::function<void(const schedule_output&)> observer) { observer_ = std::move(observer); }
  /// How the KV cache was sized on a GPU ("" on the CPU).
  const std::string& kv_cache_note() const { return kv_note_; }

 private:
  struct place {
    size_t input, sample;
  };
  using places = std::unordered_map<request_id, place>;
  llm(llama_model& model, const tokenizer& tok, const scheduler_options& so, block_hash_fn hash);
  void finish(request_id id, finish_reason reason, std::string why);
  void add_requests(std::span<const llm_request> requests, std::vector<llm_output>& outputs, places& where);
  void process(const schedule_output& step, expected<step_result>& result, std::vector<llm_output>& outputs,
               const places& where);

  llama_model& model_;
  tokenizer tok_;
  std::unique_ptr<scheduler> sched_;
  model_runner runner_;
  output_processor texts_;
  request_id next_id_ = 0;
  int32_t steps_in_flight_ = 1;
  uint64_t steps_ = 0, tokens_ = 0;
  std::string kv_note_;
  std::function<void(const schedule_output&)> observer_;
};

/// The scheduler limits for a model on its backend. On a backend that reports its memory (a GPU)
/// with kv_cache_blocks 0, the KV cache takes what is left of gpu_memory_utilization x the card's
/// memory after what is in use now (the weights) and gpu_activation_bytes, at most max_num_seqs
/// full-length sequences; *note then says how (for the log). Too little memory is an error with the
/// numbers. Elsewhere: make_scheduler_options.
expected<scheduler_options> size_kv_cache(llama_model& model, const llm_options& o, std::string* note = nullptr);

/// Bytes the activations of a step of max_num_batched_tokens tokens and max_num_seqs logits rows
/// may take on a GPU (a generous estimate: twice the largest step's buffers, plus 512 MiB for
/// cuBLAS and attention scratch).
int64_t gpu_activation_bytes(const config::model_config& cfg, const llm_options& o, int64_t element_bytes);

}  // namespace troupe::engine
