// The CUDA backend class (internal: CUDA and cuBLAS types); kernels/cuda/cuda_backend.hpp is the public face.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/cublas_loader.hpp"
#include "kernels/cuda/lt_matmul.hpp"

namespace troupe::kernels::cuda {

/// The device and stream, kept alive by every tensor the backend hands out (their memory is freed
/// in stream order on this stream).
struct device_context {
  int device = 0;
  cudaStream_t stream = nullptr;
  // A second stream for work that may run beside the stream's own (a mixed step's decode rows'
  // attention beside its prompt chunks'), forked and joined through the two events.
  cudaStream_t side = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
  ~device_context();
};

struct sample_scratch;  // kernels/cuda/sample.cu

class cuda_backend final : public backend {
 public:
  /// nullptr with the reason in *why when the device cannot be used.
  static std::unique_ptr<cuda_backend> create(int device, dtype compute, std::string* why);
  ~cuda_backend() override;

  std::string_view name() const override { return name_; }
  dtype compute_type() const override { return compute_; }

  tensor alloc(shape dims) override;
  tensor alloc_zeroed(shape dims) override;
  tensor upload_weight(dtype type, const void* host, shape dims) override;
  tensor alloc_weight(shape dims) override;
  void fill_weight(dtype type, const void* host, tensor& dst) override;
  index_tensor upload_indices(std::span<const int32_t> host, shape dims) override;
  void copy_to_device(std::span<const float> host, tensor& dst) override;
  void copy_to_host(const tensor& src, std::span<float> host) override;
  void synchronize() override;

  void embedding(const tensor& table, const index_tensor& ids, tensor& out) override;
  void rms_norm(const tensor& x, const tensor& weight, float eps, tensor& out) override;
  void add_rms_norm(const tensor& x, tensor& residual, const tensor& weight, float eps, tensor& out) override;
  void matmul(const tensor& x, const tensor& weight, const tensor* bias, tensor& out) override;
  void rope_write_kv(const tensor& qkv, tensor& q, const index_tensor& positions, const tensor& inv_freq,
                     const index_tensor& slot_mapping, tensor& k_cache, tensor& v_cache) override;
  void paged_attention(const tensor& q, const tensor& k_cache, const tensor& v_cache, const attention_batch& batch,
                       tensor& out) override;
  bool gated_matmul(const tensor& x, const tensor& gate, const tensor& up, tensor& out) override;
  void silu_and_mul(const tensor& gate_up, tensor& out) override;
  void add(const tensor& a, const tensor& b, tensor& out) override;
  void gather_rows(const tensor& x, const index_tensor& rows, tensor& out) override;
  /// Samples on the GPU; only tokens and requested logprobs come back (kernels/cuda/sample.cu).
  void sample(const tensor& logits, const sampling_batch& batch, sample_result& out) override;
  /// The halves of sample (two tickets, each with its own upload and result buffers, an event after
  /// its results' copy down); feed_sampled is a small kernel reading the ticket's device tokens.
  int sample_begin(const tensor& logits, const sampling_batch& batch) override;
  void sample_end(int ticket, sample_result& out) override;
  bool sample_ready(int ticket) override;
  void feed_sampled(int ticket, std::span<const int32_t> rows, index_tensor& ids, std::span<const int32_t> at) override;

  void write_indices(std::span<const int32_t> host, index_tensor& dst) override;
  bool memory_info(size_t& free_bytes, size_t& total_bytes) override;
  std::string last_error() const override { return error_; }
  /// One row count per tuning bucket of lt_matmul (its largest), from 2 up to max_rows' bucket;
  /// empty while products go to GemmEx.
  std::vector<int64_t> matmul_rows_to_prepare(int64_t max_rows) const override;
  bool supports_graphs() const override { return true; }
  bool begin_capture() override;
  int end_capture() override;
  void replay(int graph) override;
  void release_graph(int graph) override;
  void release_graphs();

  const std::string& error() const { return error_; }
  bool ok() const { return error_.empty(); }
  void set_dummy_weights(uint64_t seed) {
    dummy_ = true;
    dummy_seed_ = seed;
  }
  void set_gemv_variant(int v) { gemv_variant_ = v; }
  void set_prefill_kernel(bool on) { prefill_kernel_ = on; }
  void set_fused_rope_group(int64_t group) { fused_rope_group_ = group; }
  /// Products of 2 to max_rows rows through cuBLASLt tuned per shape (on), the others through
  /// cublasGemmEx; false where cuBLASLt could not be loaded.
  bool set_lt_matmul(bool on, int64_t max_rows) {
    use_lt_ = on && lt_ != nullptr;
    lt_max_rows_ = max_rows;
    return use_lt_ == on;
  }
  std::string matmul_report(bool per_shape) const { return lt_ ? lt_->report(per_shape) : std::string(); }
  cudaStream_t stream() const { return ctx_->stream; }

  /// Profiling: while on, every op is timed with CUDA events (see cuda_profile_report).
  void set_profiling(bool on) { profiling_ = on; }
  std::string profile_report();
  int profile_begin(const char* name);
  void profile_end(int index);

  /// Records the first failure; true when e is success.
  bool check(cudaError_t e, const char* what, const char* file, int line);
  bool check_blas(cublasStatus_t s, const char* what, const char* file, int line);

 private:
  cuda_backend() = default;
  std::shared_ptr<void> device_bytes(size_t nbytes);  // stream-ordered allocation, null on failure
  // Matrix-vector products of one x wait here so that consecutive ones (q, k, v; gate, up) run as
  // one launch; every other op, copy and synchronize launches them first. The tensors (and so their
  // memory) stay alive until then.
  struct pending_gemv {
    tensor x, w, bias, out;
  };
  // RoPE and the K/V write wait here too, so that decode attention right after can do them itself
  // (attention_args::rope_*); any other op launches them first, in issue order before pending gemvs.
  struct pending_rope {
    tensor qkv, q, inv_freq, k_cache, v_cache;
    index_tensor positions, slots;
  };
  void launch_rope(const pending_rope& r);
  void flush();
  // The per-row kernel: its split plan's scratch and counters are set up on the stream, then it runs
  // on `on` (the stream, or the side stream after a fork); the scratch returned must outlive it.
  std::shared_ptr<void> attention_rows_call(const attention_args& a, const char* label, cudaStream_t on);
  tensor make_tensor(dtype type, shape dims);

  std::shared_ptr<device_context> ctx_;
  const cublas_api* cublas_ = nullptr;  // loaded at run time (cublas_loader.hpp)
  cublasHandle_t blas_ = nullptr;
  std::shared_ptr<void> blas_workspace_;
  std::unique_ptr<lt_matmul> lt_;  // null without cuBLASLt: every product then takes GemmEx
  bool use_lt_ = false;
  int64_t lt_max_rows_ = 512;  // larger products take GemmEx (see cuda_use_lt_matmul)
  dtype compute_ = dtype::bf16;
  std::string name_;
  std::string error_;
  int num_sms_ = 1;
  bool dummy_ = false;
  uint64_t dummy_seed_ = 0, dummy_count_ = 0;
  int gemv_variant_ = 1;  // 0: cuBLAS
  std::vector<pending_gemv> pending_;
  std::optional<pending_rope> rope_;
  bool fuse_rope_ = true;  // TROUPE_ROPE_FUSE=0: RoPE and the K/V write always on their own
  int64_t fused_rope_group_ = 1;  // query heads a KV head at most for the fusion (tests: up to 8)
  std::shared_ptr<void> split_counters_;  // for the decode attention's last-block combine
  int64_t split_counters_len_ = 0;
  struct timed_op {
    const char* name;
    cudaEvent_t start, stop;
  };
  bool profiling_ = false;
  std::vector<timed_op> timed_;
  std::vector<cudaEvent_t> spare_events_;
  cudaEvent_t take_event();
  bool prefill_kernel_ = true;
  bool fork_attention_ = true;  // TROUPE_ATTENTION_FORK=0: a mixed step's two attentions one after the other
  bool capturing_ = false;
  bool profiling_before_capture_ = false;
  std::vector<cudaGraphExec_t> graphs_;  // by id; null once released

  std::shared_ptr<sample_scratch> sampling_;  // made in create (sample.cu), grown by sample
  static std::shared_ptr<sample_scratch> make_sample_scratch();
};

/// Times the op of its scope when the backend is profiling.
class profile_scope {
 public:
  profile_scope(cuda_backend& be, const char* name) : be_(be), index_(be.profile_begin(name)) {}
  ~profile_scope() { be_.profile_end(index_); }
  profile_scope(const profile_scope&) = delete;
  profile_scope& operator=(const profile_scope&) = delete;

 private:
  cuda_backend& be_;
  int index_;
};

}  // namespace troupe::kernels::cuda

/// Every CUDA runtime call of the backend goes through this: a failure becomes the backend's error
/// state (see cuda_backend_error) instead of an abort.
#define TROUPE_CUDA_OK(call) check((call), #call, __FILE__, __LINE__)
#define TROUPE_CUBLAS_OK(call) check_blas((call), #call, __FILE__, __LINE__)
