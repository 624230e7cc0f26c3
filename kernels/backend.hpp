// The backend interface: the only boundary between the model code and the hardware it runs on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/sampling.hpp"
#include "kernels/tensor.hpp"

namespace troupe::kernels {

/// Where each sequence of a batch sits in the flattened token rows and in the paged KV cache.
/// Sequence s owns token rows [query_start_loc[s], query_start_loc[s + 1]); it has seq_lens[s]
/// tokens of context in all (cached prefix plus the new rows), so its new row j has position
/// seq_lens[s] - query_len + j. Its keys and values live in the blocks block_tables[s][*].
struct attention_batch {
  index_tensor query_start_loc;  ///< [num_seqs + 1], cumulative
  index_tensor seq_lens;         ///< [num_seqs]
  index_tensor block_tables;     ///< [num_seqs, max_blocks_per_seq]; padding entries are never read
  int32_t max_query_len = 0;     ///< host-known bounds, for launch sizes on GPUs
  int32_t max_seq_len = 0;
  int32_t sliding_window = 0;    ///< 0: full causal attention; else a query at p sees keys > p - window
  float scale = 1.0f;            ///< softmax scale, usually 1 / sqrt(head_dim)
  /// Optional: the sequences with exactly one new row, longest context first, and the others
  /// (together every sequence, each once; prefill_seqs empty when every sequence decodes). A
  /// backend may serve the two sets with different kernels and use the order to start the longest
  /// work first; it may also ignore them.
  index_tensor decode_seqs;
  index_tensor prefill_seqs;
};

/// A compute backend. It owns its memory: tensors it returns live in its address space (host memory
/// for the CPU backend, device memory for a GPU one) and are only read or written by its ops, or
/// through the explicit copies below. Ops may run asynchronously; copy_to_host and synchronize wait.
///
/// Shapes, all row-major: activations are [tokens, features]; a weight of a linear layer is
/// [out_features, in_features] as in PyTorch; a KV cache layer is
/// [num_blocks, block_size, num_kv_heads, head_dim] and slot s is row s of its
/// [num_blocks * block_size, num_kv_heads, head_dim] view.
class backend {
 public:
  virtual ~backend() = default;

  /// A short name for logs ("cpu", "cuda:0").
  virtual std::string_view name() const = 0;
  /// The element type in which this backend computes activations (and keeps the KV cache).
  virtual dtype compute_type() const = 0;

  // Memory.

  /// An uninitialised activation buffer of the compute type.
  virtual tensor alloc(shape dims) = 0;
  /// A zero-filled buffer of the compute type (KV caches).
  virtual tensor alloc_zeroed(shape dims) = 0;
  /// Makes a weight usable by the ops from host memory of element type `type`. The host memory must
  /// outlive the returned tensor when the backend can use it in place (the CPU backend does so for
  /// aligned float32 data: zero copy); otherwise the data is converted and copied.
  virtual tensor upload_weight(dtype type, const void* host, shape dims) = 0;
  /// An unfilled weight of `dims` in the form upload_weight gives one (matrices in the compute type,
  /// vectors in float32 on a GPU), to be filled part by part with fill_weight: the model stacks
  /// q, k and v (and gate and up) into one matrix so each is one product.
  virtual tensor alloc_weight(shape dims) = 0;
  /// Converts host memory of element type `type` (dst.numel() elements) into dst, a weight from
  /// alloc_weight or a range of its rows.
  virtual void fill_weight(dtype type, const void* host, tensor& dst) = 0;
  /// Copies host indices into a new index buffer of the given shape (numel must match).
  virtual index_tensor upload_indices(std::span<const int32_t> host, shape dims) = 0;
  /// Copies host float32 values into dst (of dst.numel() elements).
  virtual void copy_to_device(std::span<const float> host, tensor& dst) = 0;
  /// Copies src into host float32 memory of src.numel() elements; waits for pending work.
  virtual void copy_to_host(const tensor& src, std::span<float> host) = 0;
  /// Waits until every op issued so far has finished.
  virtual void synchronize() = 0;

  // Ops. Outputs are preallocated by the caller and never alias inputs unless stated.

  /// out[t] = table[ids[t]]; table [vocab, hidden], out [tokens, hidden]. Ids must be in range.
  virtual void embedding(const tensor& table, const index_tensor& ids, tensor& out) = 0;
  /// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight.
  virtual void rms_norm(const tensor& x, const tensor& weight, float eps, tensor& out) = 0;
  /// residual += x, then out = rms_norm(residual): the pre-norm of the next sub-layer.
  virtual void add_rms_norm(const tensor& x, tensor& residual, const tensor& weight, float eps,
                            tensor& out) = 0;
  /// out = x · weightᵀ (+ bias): x [tokens, in], weight [out, in], bias [out] or empty, out [tokens, out].
  virtual void matmul(const tensor& x, const tensor& weight, const tensor* bias, tensor& out) = 0;
  /// qkv [tokens, heads + 2 * kv_heads, head_dim] holds each token's query heads, then its key
  /// heads, then its value heads (one product with the stacked weights). Writes the queries rotated
  /// by angle positions[t] * inv_freq[i] (rotate-half layout as Hugging Face Llama; inv_freq has
  /// head_dim / 2 entries) to q [tokens, heads, head_dim], and the rotated keys and the values into
  /// the caches at slot_mapping[t] (a negative slot skips the write). qkv is not changed.
  virtual void rope_write_kv(const tensor& qkv, tensor& q, const index_tensor& positions, const tensor& inv_freq,
                             const index_tensor& slot_mapping, tensor& k_cache, tensor& v_cache) = 0;
  /// Causal attention of q [tokens, heads, head_dim] over the paged caches (which already hold the
  /// new keys and values) for every sequence of the batch; grouped-query when kv_heads < heads.
  /// out [tokens, heads, head_dim].
  virtual void paged_attention(const tensor& q, const tensor& k_cache, const tensor& v_cache,
                               const attention_batch& batch, tensor& out) = 0;
  /// out = silu(x · gateᵀ) * (x · upᵀ) (the SwiGLU of an MLP) when the backend has a fused form for
  /// these operands; false (and nothing done) otherwise, and the caller runs one matmul with the
  /// stacked gate and up weights and silu_and_mul, which give the same values.
  virtual bool gated_matmul(const tensor& /*x*/, const tensor& /*gate*/, const tensor& /*up*/, tensor& /*out*/) {
    return false;
  }
  /// gate_up [rows, 2 * n] holds each row's gate then its up values; out [rows, n] = silu(gate) * up.
  virtual void silu_and_mul(const tensor& gate_up, tensor& out) = 0;
  /// out = a + b, elementwise (out may alias a or b).
  virtual void add(const tensor& a, const tensor& b, tensor& out) = 0;
  /// out[i] = x[rows[i]]: x [tokens, features], out [rows.numel(), features].
  virtual void gather_rows(const tensor& x, const index_tensor& rows, tensor& out) = 0;

  // Optional features. The defaults suit a backend whose memory is host memory, that runs each op
  // at once and has no graphs (the CPU backend and wrappers of it).

  /// Writes host indices into dst's memory (host.size() == dst.numel()), ordered with the ops issued
  /// before and after; the host memory may be reused as soon as it returns.
  virtual void write_indices(std::span<const int32_t> host, index_tensor& dst) {
    if (!host.empty()) std::memcpy(dst.data, host.data(), host.size_bytes());
  }
  /// Free and total bytes of the memory this backend allocates from; false when it cannot tell
  /// (the CPU backend shares the host's memory with everything else).
  virtual bool memory_info(size_t& /*free_bytes*/, size_t& /*total_bytes*/) { return false; }
  /// The first error asynchronous work met, "" while none. After an error a backend's ops do
  /// nothing and copies to the host give NaN.
  virtual std::string last_error() const { return {}; }

  /// Row counts (ascending, up to about max_rows) at which a model should run each of its matrix
  /// products once before serving, so that what the backend settles at a product shape's first call
  /// (the CUDA backend times cuBLASLt's algorithms) is settled at start-up, not in the first steps;
  /// empty (the default) when there is nothing to settle.
  virtual std::vector<int64_t> matmul_rows_to_prepare(int64_t /*max_rows*/) const { return {}; }

  /// Graphs: between begin_capture() and end_capture() the ops are recorded instead of run, and
  /// replay() runs the recording again on the same buffers, reading whatever they hold then (inputs
  /// go in with write_indices). Every buffer the recorded ops touch must outlive the graph.
  /// begin_capture() false: not supported now; the ops then run at once as usual.
  virtual bool supports_graphs() const { return false; }
  virtual bool begin_capture() { return false; }
  /// Ends a capture: a graph id, or -1 when recording failed.
  virtual int end_capture() { return -1; }
  virtual void replay(int /*graph*/) {}
  /// Frees a graph; its id is not reused.
  virtual void release_graph(int /*graph*/) {}

  // Sampling.

  /// Samples (or scores) every row of logits [rows, vocab] by its recipe and returns host results:
  /// out.tokens[r] and, where batch.rows[r].logprobs >= 0, out.logprobs[r]. Waits for the result.
  /// The semantics are those of kernels/cpu/sampling_reference.hpp. This default copies the logits
  /// to the host and runs that reference; backends override it to keep the logits where they are.
  virtual void sample(const tensor& logits, const sampling_batch& batch, sample_result& out);

  /// sample() in two halves, so that a step may start before the last step's tokens reach the host
  /// (engine::model_runner): sample_begin starts the work and returns a ticket (the two latest stay
  /// open), sample_end waits for that ticket's results, and sample_ready says whether it would wait.
  /// feed_sampled writes a begun ticket's token of row rows[i] (a row that samples, not one that
  /// scores a given token) into ids[at[i]], ordered after the work issued before it, so the next
  /// step's inputs take them where they are. The defaults
  /// sample at once (sample()) and write host memory, as write_indices does.
  virtual int sample_begin(const tensor& logits, const sampling_batch& batch);
  virtual void sample_end(int ticket, sample_result& out);
  virtual bool sample_ready(int /*ticket*/) { return true; }
  virtual void feed_sampled(int ticket, std::span<const int32_t> rows, index_tensor& ids, std::span<const int32_t> at);

 private:
  sample_result begun_[2];  // the defaults' results by ticket
  int next_ticket_ = 0;
};

/// The float32 CPU reference backend (kernels/cpu/). `threads` 0: use every core.
std::unique_ptr<backend> make_cpu_backend(int threads = 0);

}  // namespace troupe::kernels
