// The Llama-family forward pass (Llama 2/3, Mistral, Qwen2) over a paged KV cache, on any backend.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "config/error.hpp"
#include "config/model_config.hpp"
#include "engine/model/kv_cache.hpp"
#include "engine/model/step_input.hpp"
#include "kernels/backend.hpp"

namespace troupe::engine {

/// A decoder-only Llama-family model whose weights live in a backend. Not thread-safe: one caller
/// runs forward at a time.
class llama_model {
 public:
  /// Told after each weight reaches the backend: elements uploaded so far and in all.
  using load_progress = std::function<void(int64_t done, int64_t total)>;

  /// Loads DIR/config.json and the safetensors weights of DIR (checked against the config), each
  /// straight from the memory-mapped file to the backend.
  static expected<std::unique_ptr<llama_model>> load(const std::filesystem::path& dir,
                                                     kernels::backend& be,
                                                     const load_progress& progress = {});
  /// A model of the config's shape with seeded random weights (see random_weights).
  static expected<std::unique_ptr<llama_model>> random(const config::model_config& cfg,
                                                       uint64_t seed, kernels::backend& be);

  ~llama_model();
  llama_model(const llama_model&) = delete;
  llama_model& operator=(const llama_model&) = delete;

  const config::model_config& config() const { return cfg_; }
  kernels::backend& backend() { return be_; }

  /// The KV cache shape this model needs for num_blocks blocks of block_size tokens.
  kv_cache_shape cache_shape(int64_t num_blocks, int64_t block_size = 16) const;
  /// A KV cache of num_blocks blocks.
  std::unique_ptr<kv_cache> make_kv_cache(int64_t num_blocks, int64_t block_size = 16);
  /// A KV cache with room for at least `tokens` tokens (of one or several sequences).
  std::unique_ptr<kv_cache> make_kv_cache_for_tokens(int64_t tokens, int64_t block_size = 16);

  /// Runs one step: appends the step's keys and values to the cache and returns the logits of the
  /// rows in input.logits_indices, [logits_indices.size() x vocab_size], row-major. Errors on
  /// inconsistent input (ids out of the vocabulary, slots or blocks outside the cache, ...).
  expected<std::vector<float>> forward(const step_input& input, kv_cache& cache);
  /// As forward, but the logits stay in the backend's memory: a [logits_indices.size() x vocab_size]
  /// tensor owned by the model, valid until the next call (ops on it may still be running).
  expected<kernels::tensor> forward_device(const step_input& input, kv_cache& cache);

  /// Decode steps (one new token per sequence) of up to `max_batch` sequences replay graphs the
  /// backend recorded (CUDA graphs), captured the first time each padded batch size and context
  /// bound is seen; 0 turns graphs off. Default 256, or 0 when TROUPE_CUDA_GRAPHS=0 is set.
  void set_graph_batch(int32_t max_batch);
  /// Runs each distinct matrix product of a step (q/k/v, o, gate/up, down; the LM head up to
  /// `max_scored` rows) once at every row count the backend names (backend::matmul_rows_to_prepare)
  /// up to `max_tokens`, on the step buffers and activations of a model's scale, so that the backend
  /// settles its per-shape choices now rather than in the first steps. Nothing on backends that name
  /// none. Touches no KV cache.
  void prepare_products(int64_t max_tokens, int64_t max_scored);
  /// Graphs recorded so far (tests, logs).
  size_t num_graphs() const { return graphs_.size(); }

  /// A weight as the model reads it from host memory: element type, data, shape.
  struct host_weight {
    kernels::dtype type = kernels::dtype::f32;
    const void* data = nullptr;
  };
  /// Finds a weight by Hugging Face name and expected shape.
  using weight_getter =
      std::function<expected<host_weight>(const std::string& name, const std::vector<int64_t>& shape)>;

  /// Builds a model from any weight source; `keep_alive` owns the host memory the getter points into
  /// (the backend may use it in place).
  static expected<std::unique_ptr<llama_model>> build(const config::model_config& cfg,
                                                      kernels::backend& be, const weight_getter& get,
                                                      std::shared_ptr<const void> keep_alive,
                                                      const load_progress& progress = {});

 private:
  struct layer_weights {
    // qkv stacks the q, k and v projections (rows q_out + 2 kv_out) and gate_up the gate and up ones
    // (2 x intermediate rows), each one product; gate and up are views of gate_up's halves.
    kernels::tensor input_norm, qkv, qkv_bias, o, o_bias, post_norm, gate_up, gate, up, down;
  };
  struct step_buffers;
  /// The index inputs of a step in the backend's memory.
  struct step_indices {
    kernels::index_tensor ids, positions, slots, logits_rows;
    kernels::attention_batch batch;
  };
  struct graph_key {
    int32_t batch = 0, max_len = 0;
    auto operator<=>(const graph_key&) const = default;
  };

  llama_model(const config::model_config& cfg, kernels::backend& be);
  expected<void> upload(const weight_getter& get, const load_progress& progress);
  expected<void> check_input(const step_input& input, const kv_cache& cache) const;
  /// Orders sequence indices by their length in seq_lens, longest first (ties keep their order).
  static void longest_first(std::vector<int32_t>& seqs, const std::vector<int32_t>& seq_lens);
  step_buffers& buffers_for(int64_t tokens);
  void run_layer(int64_t layer, step_buffers& buf, const step_indices& in, kv_cache& cache, bool first);
  /// Issues the whole step on the backend; returns the logits rows (a view of logits_).
  kernels::tensor run_step(const step_indices& in, int64_t tokens, int64_t rows, kv_cache& cache);
  /// The graph path for decode steps; an empty optional when the step does not qualify.
  std::optional<expected<kernels::tensor>> forward_graph(const step_input& in, kv_cache& cache);
  void drop_graphs();

  config::model_config cfg_;
  kernels::backend& be_;
  std::shared_ptr<const void> keep_alive_;
  kernels::tensor embed_, final_norm_, lm_head_, inv_freq_;
  std::vector<float> inv_freq_host_;                // inv_freq_ may use it in place (CPU)
  std::unique_ptr<step_buffers> workspace_;         // activations, grown to the largest step
  kernels::tensor logits_;                          // of the last step, grown to the largest
  // Graphs: by padded batch size and context bound, valid for the buffers they were recorded on.
  int32_t graph_batch_ = 256;
  bool graphs_unsupported_ = false;
  std::map<graph_key, int> graphs_;
  kernels::index_tensor graph_inputs_;  // every graph's index inputs, laid out by its key
  int64_t graph_block_size_ = 0;
  // The cache, workspace and logits buffers the graphs were recorded on (both buffers only grow).
  int64_t graph_buffers_[3] = {};
  std::vector<int32_t> graph_host_, graph_order_;
  std::set<int32_t> eager_batches_;  // padded batch sizes already run op by op before a capture
  int64_t workspace_tokens_ = 0;
  std::vector<layer_weights> layers_;
};

/// Fills in derived fields (head_dim from hidden / heads when 0) and checks that the shape makes
/// sense for the forward pass (positive sizes, heads divisible by KV heads, even head_dim).
expected<void> check_model_shape(config::model_config& cfg);

}  // namespace troupe::engine
