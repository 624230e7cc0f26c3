// The CUDA backend's creation, error state, memory (stream-ordered pool) and host transfers.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "config/switches.hpp"
#include "kernels/cuda/convert.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cublas_loader.hpp"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_backend_impl.cuh"

namespace troupe::kernels {

std::unique_ptr<backend> make_cuda_backend(int device, dtype compute, std::string* why) {
  return cuda::cuda_backend::create(device, compute, why);
}

std::string cuda_backend_error(const backend& be) {
  const auto* c = dynamic_cast<const cuda::cuda_backend*>(&be);
  return c != nullptr ? c->error() : std::string();
}

bool cuda_set_dummy_weights(backend& be, uint64_t seed) {
  auto* c = dynamic_cast<cuda::cuda_backend*>(&be);
  if (c == nullptr) return false;
  c->set_dummy_weights(seed);
  return true;
}

bool cuda_use_own_gemv(backend& be, bool on) {
  auto* c = dynamic_cast<cuda::cuda_backend*>(&be);
  if (c == nullptr) return false;
  c->set_gemv_variant(on ? 1 : 0);
  return true;
}

bool cuda_set_gemv_variant(backend& be, int variant) {
  auto* c = dynamic_cast<cuda::cuda_backend*>(&be);
  if (c == nullptr || variant < 0 || variant > cuda::gemv_variants) return false;
  c->set_gemv_variant(variant);
  return true;
}

bool cuda_set_fused_rope_group(backend& be, int group) {
  auto* c = dynamic_cast<cuda::cuda_backend*>(&be);
  if (c == nullptr || group < 1 || group > 8) return false;
  c->set_fused_rope_group(group);
  return true;
}

bool cuda_use_prefill_kernel(backend& be, bool on) {
  auto* c = dynamic_cast<cuda::cuda_backend*>(&be);
  if (c == nullptr) return false;
  c->set_prefill_kernel(on);
  return true;
}

bool cuda_use_lt_matmul(backend& be, bool on, int64_t max_rows) {
  auto* c = dynamic_cast<cuda::cuda_backend*>(&be);
  return c != nullptr && c->set_lt_matmul(on, max_rows);
}

std::string cuda_matmul_report(backend& be, bool per_shape) {
  auto* c = dynamic_cast<cuda::cuda_backend*>(&be);
  return c != nullptr ? c->matmul_report(per_shape) : std::string();
}

bool cuda_profile(backend& be, bool on) {
  auto* c = dynamic_cast<cuda::cuda_backend*>(&be);
  if (c == nullptr) return false;
  c->set_profiling(on);
  return true;
}

std::string cuda_profile_report(backend& be) {
  auto* c = dynamic_cast<cuda::cuda_backend*>(&be);
  return c != nullptr ? c->profile_report() : std::string();
}

}  // namespace troupe::kernels

namespace troupe::kernels::cuda {

device_context::~device_context() {
  for (cudaStream_t s : {side, stream})
    if (s != nullptr) {
      cudaStreamSynchronize(s);
      cudaStreamDestroy(s);
    }
  for (cudaEvent_t e : {fork, join})
    if (e != nullptr) cudaEventDestroy(e);
}

std::unique_ptr<cuda_backend> cuda_backend::create(int device, dtype compute, std::string* why) {
  auto fail = [&](std::string reason) -> std::unique_ptr<cuda_backend> {
    if (why) *why = std::move(reason);
    cudaGetLastError();
    return nullptr;
  };
  if (compute != dtype::bf16 && compute != dtype::f16) return fail("the CUDA backend computes in bf16 or f16 only");
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) return fail(cudaGetErrorString(e));
  if (device < 0 || device >= count) return fail("no CUDA device " + std::to_string(device));
  cudaDeviceProp prop{};
  if (cudaError_t e = cudaGetDeviceProperties(&prop, device); e != cudaSuccess) return fail(cudaGetErrorString(e));
  if (prop.major < 8) return fail(std::string(prop.name) + " is below sm_80, which the CUDA kernels need");
  if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess) return fail(cudaGetErrorString(e));
  std::unique_ptr<cuda_backend> be(new cuda_backend());
  be->ctx_ = std::make_shared<device_context>();
  be->ctx_->device = device;
  // TROUPE_CUDA_STREAM_PRIORITY=high: the stream's kernels go first where several streams share the
  // card (cuda_bench --overlap measures two passes at once this way).
  int priority = 0, lowest = 0, highest = 0;
  if (const char* p = std::getenv("TROUPE_CUDA_STREAM_PRIORITY"); p != nullptr && std::string_view(p) == "high" &&
      cudaDeviceGetStreamPriorityRange(&lowest, &highest) == cudaSuccess)
    priority = highest;
  if (cudaError_t e = cudaStreamCreateWithPriority(&be->ctx_->stream, cudaStreamNonBlocking, priority); e != cudaSuccess)
    return fail(cudaGetErrorString(e));
  if (cudaError_t e = cudaStreamCreateWithPriority(&be->ctx_->side, cudaStreamNonBlocking, priority); e != cudaSuccess)
    return fail(cudaGetErrorString(e));
  for (cudaEvent_t* ev : {&be->ctx_->fork, &be->ctx_->join})
    if (cudaError_t e = cudaEventCreateWithFlags(ev, cudaEventDisableTiming); e != cudaSuccess)
      return fail(cudaGetErrorString(e));
  be->fork_attention_ = !config::switched_off("TROUPE_ATTENTION_FORK");
  be->fuse_rope_ = !config::switched_off("TROUPE_ROPE_FUSE");
  // Freed memory stays in the pool: per-step buffers are then as cheap as a pointer bump.
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
    uint64_t keep = std::numeric_limits<uint64_t>::max();
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  be->cublas_ = load_cublas(why);
  if (be->cublas_ == nullptr) return fail(why ? *why : "cannot load cuBLAS");
  if (be->cublas_->create(&be->blas_) != CUBLAS_STATUS_SUCCESS) return fail("cublasCreate failed");
  be->cublas_->set_stream(be->blas_, be->ctx_->stream);
  constexpr size_t workspace_bytes = size_t{32} << 20;
  be->blas_workspace_ = be->device_bytes(workspace_bytes);
  if (!be->ok()) return fail(be->error());
  be->cublas_->set_workspace(be->blas_, be->blas_workspace_.get(), workspace_bytes);
  // cuBLASLt with an algorithm chosen per shape for products of 2 to 512 rows (every size with
  // TROUPE_MATMUL=lt-all), on the same workspace (fixed memory, so graphs may record it); without the
  // library, with TROUPE_MATMUL=gemmex, and above 512 rows, cublasGemmEx's default algorithm.
  be->lt_ = lt_matmul::create(be->cublas_, be->blas_, be->blas_workspace_.get(), workspace_bytes, nullptr);
  const std::string_view matmul = std::getenv("TROUPE_MATMUL") != nullptr ? std::getenv("TROUPE_MATMUL") : "";
  be->set_lt_matmul(matmul != "gemmex", matmul == "lt-all" ? std::numeric_limits<int64_t>::max() : 512);
  // The decode attention's split counters, reserved for the largest decode batches graphs record
  // (256 rows x 256 KV heads): graphs may not grow them.
  constexpr int64_t counters = int64_t{1} << 16;
  be->split_counters_ = be->device_bytes(counters * sizeof(int));
  if (!be->ok() || !be->check(cudaMemsetAsync(be->split_counters_.get(), 0, counters * sizeof(int), be->ctx_->stream),
                               "cudaMemsetAsync", __FILE__, __LINE__))
    return fail(be->error());
  be->split_counters_len_ = counters;
  be->compute_ = compute;
  be->sampling_ = make_sample_scratch();
  be->num_sms_ = prop.multiProcessorCount;
  // Programmatic dependent launch where the card has it (sm_90+), unless TROUPE_PDL=0; one older card
  // in the process turns it off for all.
  static std::atomic<int> older_cards{0};
  if (prop.major < 9) older_cards.fetch_add(1);
  set_dependent_launch(older_cards.load() == 0 && !config::switched_off("TROUPE_PDL"));
  be->name_ = "cuda:" + std::to_string(device);
  return be;
}

cuda_backend::~cuda_backend() {
  flush();
  if (ctx_) cudaStreamSynchronize(ctx_->stream);
  release_graphs();
  lt_.reset();
  blas_workspace_.reset();
  sampling_.reset();
  if (blas_ != nullptr) cublas_->destroy(blas_);
}

bool cuda_backend::check(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return true;
  if (error_.empty()) {
    char where[64];
    std::snprintf(where, sizeof where, ":%d", line);
    error_ = std::string("CUDA error: ") + cudaGetErrorString(e) + " in " + what + " at " + file + where;
  }
  cudaGetLastError();
  return false;
}

bool cuda_backend::check_blas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return true;
  if (error_.empty()) {
    char where[64];
    std::snprintf(where, sizeof where, ":%d (status %d)", line, static_cast<int>(s));
    error_ = std::string("cuBLAS error in ") + what + " at " + file + where;
  }
  return false;
}

std::shared_ptr<void> cuda_backend::device_bytes(size_t nbytes) {
  void* p = nullptr;
  if (!ok() || !TROUPE_CUDA_OK(cudaMallocAsync(&p, std::max<size_t>(nbytes, 16), ctx_->stream))) return nullptr;
  std::shared_ptr<device_context> ctx = ctx_;
  return std::shared_ptr<void>(p, [ctx](void* q) { cudaFreeAsync(q, ctx->stream); });
}

tensor cuda_backend::make_tensor(dtype type, shape dims) {
  tensor t;
  t.dims = dims;
  t.type = type;
  t.owner = device_bytes(static_cast<size_t>(dims.numel()) * dtype_size(type));
  t.data = t.owner.get();
  return t;
}

tensor cuda_backend::alloc(shape dims) { return make_tensor(compute_, dims); }

tensor cuda_backend::alloc_zeroed(shape dims) {
  tensor t = alloc(dims);
  if (t.data != nullptr) TROUPE_CUDA_OK(cudaMemsetAsync(t.data, 0, t.nbytes(), ctx_->stream));
  return t;
}

tensor cuda_backend::upload_weight(dtype type, const void* host, shape dims) {
  tensor t = alloc_weight(dims);
  if (t.data != nullptr) fill_weight(type, host, t);
  return t;
}

tensor cuda_backend::alloc_weight(shape dims) {
  // Vectors (norm weights, biases, RoPE frequencies) stay float32; matrices take the compute type.
  return make_tensor(dims.rank() <= 1 ? dtype::f32 : compute_, dims);
}

void cuda_backend::fill_weight(dtype type, const void* host, tensor& dst) {
  const int64_t n = dst.numel();
  if (dst.data == nullptr || n == 0 || !ok()) return;
  if (dummy_) {
    const bool vector = dst.dims.rank() <= 1;
    const float amplitude = vector ? 0.05f : 1.0f / std::sqrt(static_cast<float>(dst.dims.row_size()));
    TROUPE_CUDA_OK(fill_random(dst.type, dst.data, n, vector ? 1.0f : 0.0f, amplitude,
                               dummy_seed_ * 1000003u + dummy_count_++, ctx_->stream));
    return;
  }
  TROUPE_CHECK(host != nullptr);
  if (type == dst.type) {
    TROUPE_CUDA_OK(cudaMemcpyAsync(dst.data, host, dst.nbytes(), cudaMemcpyHostToDevice, ctx_->stream));
    return;
  }
  auto staging = device_bytes(static_cast<size_t>(n) * dtype_size(type));
  if (staging == nullptr) return;
  TROUPE_CUDA_OK(cudaMemcpyAsync(staging.get(), host, static_cast<size_t>(n) * dtype_size(type),
                                 cudaMemcpyHostToDevice, ctx_->stream));
  TROUPE_CUDA_OK(convert(type, staging.get(), dst.type, dst.data, n, ctx_->stream));
}

index_tensor cuda_backend::upload_indices(std::span<const int32_t> host, shape dims) {
  TROUPE_CHECK(static_cast<int64_t>(host.size()) == dims.numel());
  index_tensor t;
  t.dims = dims;
  t.owner = device_bytes(host.size_bytes());
  t.data = static_cast<int32_t*>(t.owner.get());
  if (t.data != nullptr && !host.empty())
    TROUPE_CUDA_OK(cudaMemcpyAsync(t.data, host.data(), host.size_bytes(), cudaMemcpyHostToDevice, ctx_->stream));
  return t;
}

void cuda_backend::copy_to_device(std::span<const float> host, tensor& dst) {
  TROUPE_CHECK(static_cast<int64_t>(host.size()) == dst.numel());
  flush();
  if (!ok() || host.empty()) return;
  if (dst.type == dtype::f32) {
    TROUPE_CUDA_OK(cudaMemcpyAsync(dst.data, host.data(), host.size_bytes(), cudaMemcpyHostToDevice, ctx_->stream));
    return;
  }
  auto staging = device_bytes(host.size_bytes());
  if (staging == nullptr) return;
  TROUPE_CUDA_OK(cudaMemcpyAsync(staging.get(), host.data(), host.size_bytes(), cudaMemcpyHostToDevice, ctx_->stream));
  TROUPE_CUDA_OK(convert(dtype::f32, staging.get(), dst.type, dst.data, dst.numel(), ctx_->stream));
}

void cuda_backend::copy_to_host(const tensor& src, std::span<float> host) {
  TROUPE_CHECK(static_cast<int64_t>(host.size()) == src.numel());
  auto poison = [&] { std::fill(host.begin(), host.end(), std::numeric_limits<float>::quiet_NaN()); };
  flush();
  if (!ok()) return poison();
  if (host.empty()) return;
  std::shared_ptr<void> staging;
  const void* from = src.data;
  if (src.type != dtype::f32) {
    staging = device_bytes(host.size_bytes());
    if (staging == nullptr) return poison();
    TROUPE_CUDA_OK(convert(src.type, src.data, dtype::f32, staging.get(), src.numel(), ctx_->stream));
    from = staging.get();
  }
  TROUPE_CUDA_OK(cudaMemcpyAsync(host.data(), from, host.size_bytes(), cudaMemcpyDeviceToHost, ctx_->stream));
  TROUPE_CUDA_OK(cudaStreamSynchronize(ctx_->stream));
  if (!ok()) poison();
}

cudaEvent_t cuda_backend::take_event() {
  if (!spare_events_.empty()) {
    cudaEvent_t e = spare_events_.back();
    spare_events_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  TROUPE_CUDA_OK(cudaEventCreate(&e));
  return e;
}

int cuda_backend::profile_begin(const char* name) {
  if (!profiling_ || !ok()) return -1;
  timed_op op{name, take_event(), take_event()};
  if (op.start == nullptr || op.stop == nullptr) return -1;
  TROUPE_CUDA_OK(cudaEventRecord(op.start, ctx_->stream));
  timed_.push_back(op);
  return static_cast<int>(timed_.size()) - 1;
}

void cuda_backend::profile_end(int index) {
  if (index >= 0) TROUPE_CUDA_OK(cudaEventRecord(timed_[static_cast<size_t>(index)].stop, ctx_->stream));
}

std::string cuda_backend::profile_report() {
  synchronize();
  struct total {
    int calls = 0;
    double ms = 0;
  };
  std::vector<std::pair<std::string, total>> rows;
  double busy = 0, span = 0;
  for (const auto& op : timed_) {
    float ms = 0;
    cudaEventElapsedTime(&ms, op.start, op.stop);
    auto it = std::find_if(rows.begin(), rows.end(), [&](const auto& r) { return r.first == op.name; });
    if (it == rows.end()) it = rows.insert(rows.end(), {op.name, total{}});
    it->second.calls++;
    it->second.ms += ms;
    busy += ms;
  }
  if (!timed_.empty()) {
    float ms = 0;
    cudaEventElapsedTime(&ms, timed_.front().start, timed_.back().stop);
    span = ms;
  }
  for (const auto& op : timed_) {
    spare_events_.push_back(op.start);
    spare_events_.push_back(op.stop);
  }
  timed_.clear();
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  std::string out;
  char line[160];
  for (const auto& [name, t] : rows) {
    std::snprintf(line, sizeof line, "  %-28s %7d calls %9.3f ms %5.1f%%\n", name.c_str(), t.calls, t.ms,
                  busy > 0 ? 100.0 * t.ms / busy : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "  ops %.3f ms of %.3f ms from the first op's start to the last op's end: %.1f%% busy\n",
                busy, span, span > 0 ? 100.0 * busy / span : 0.0);
  out += line;
  return out;
}

void cuda_backend::synchronize() {
  flush();
  TROUPE_CUDA_OK(cudaStreamSynchronize(ctx_->stream));
}

}  // namespace troupe::kernels::cuda
