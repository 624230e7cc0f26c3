// cuBLASLt products with an algorithm chosen per shape by timing the candidates once (lt_matmul.hpp).
//
// Row-major out[m, n] = x[m, k] · w[n, k]ᵀ is column-major outᵀ[n, m] = op(W)[n, k] · xᵀ[k, m], with W
// stored column-major as [k, n] (leading dimension k) and op = transpose: A = W, B = x, C = D = out.
#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "kernels/cuda/lt_matmul.hpp"

namespace troupe::kernels::cuda {
namespace {

constexpr cublasStatus_t ok = CUBLAS_STATUS_SUCCESS;
constexpr double never = std::numeric_limits<double>::infinity();

// Holds the stream for `ns` nanoseconds, so that the host queues a round of timed calls behind it
// and the GPU then runs them back to back (host launch gaps would otherwise count for small products).
__global__ void hold_kernel(unsigned long long ns) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}

// The alignment in bytes (up to 256) that the three operands share.
int align_of(const gemm_args& g) {
  const uintptr_t bits = reinterpret_cast<uintptr_t>(g.x) | reinterpret_cast<uintptr_t>(g.w) |
                         reinterpret_cast<uintptr_t>(g.out) | uintptr_t{256};
  return static_cast<int>(bits & (~bits + 1));
}

}  // namespace

cublasStatus_t gemm_ex(const cublas_api& blas, cublasHandle_t handle, const gemm_args& g) {
  const float alpha = 1.0f, beta = 0.0f;
  return blas.gemm_ex(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(g.n), static_cast<int>(g.m),
                      static_cast<int>(g.k), &alpha, g.w, g.type, static_cast<int>(g.k), g.x, g.type,
                      static_cast<int>(g.k), &beta, g.out, g.type, static_cast<int>(g.n), CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT);
}

int64_t lt_matmul::m_bucket(int64_t m) {
  if (m <= 8) return static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(std::max<int64_t>(m, 1))));
  if (m <= 256) return (m + 7) / 8 * 8;
  const int64_t step = static_cast<int64_t>(std::bit_floor(static_cast<uint64_t>(m - 1))) / 4;
  return (m + step - 1) / step * step;
}

std::unique_ptr<lt_matmul> lt_matmul::create(const cublas_api* blas, cublasHandle_t handle, void* workspace,
                                             size_t workspace_bytes, std::string* why) {
  const cublaslt_api* lt = load_cublaslt(why);
  if (lt == nullptr || blas == nullptr) return nullptr;
  std::unique_ptr<lt_matmul> t(new lt_matmul());
  t->blas_ = blas;
  t->lt_ = lt;
  t->handle_ = handle;
  t->workspace_ = workspace;
  t->workspace_bytes_ = workspace_bytes;
  auto fail = [&](const char* what) -> std::unique_ptr<lt_matmul> {
    if (why) *why = std::string("cuBLASLt: ") + what + " failed";
    return nullptr;
  };
  int device = 0, l2 = 0;
  if (cudaGetDevice(&device) == cudaSuccess &&
      cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device) == cudaSuccess && l2 > 0)
    t->l2_bytes_ = static_cast<size_t>(l2);
  cudaGetLastError();
  if (lt->create(&t->lt_handle_) != ok) return fail("cublasLtCreate");
  if (lt->desc_create(&t->desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F) != ok) return fail("cublasLtMatmulDescCreate");
  const cublasOperation_t transpose = CUBLAS_OP_T;
  if (lt->desc_set(t->desc_, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose) != ok)
    return fail("setting the transpose of A");
  if (lt->pref_create(&t->pref_) != ok) return fail("cublasLtMatmulPreferenceCreate");
  const uint64_t most = workspace_bytes;
  if (lt->pref_set(t->pref_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &most, sizeof most) != ok)
    return fail("setting the workspace size");
  return t;
}

lt_matmul::~lt_matmul() {
  drop_plans();
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
  if (pref_ != nullptr) lt_->pref_destroy(pref_);
  if (desc_ != nullptr) lt_->desc_destroy(desc_);
  if (lt_handle_ != nullptr) lt_->destroy(lt_handle_);
}

void lt_matmul::drop_plans() {
  for (auto& [at, p] : plans_)
    for (cublasLtMatrixLayout_t l : {p.a, p.b, p.c})
      if (l != nullptr) lt_->layout_destroy(l);
  plans_.clear();
}

lt_matmul::plan* lt_matmul::plan_for(const key& exact) {
  if (auto it = plans_.find(exact); it != plans_.end()) return &it->second;
  if (plans_.size() >= 4096) drop_plans();  // prefill steps of ever new row counts: keep the map bounded
  plan p;
  const auto t = static_cast<cudaDataType_t>(exact.type);
  const auto m = static_cast<uint64_t>(exact.m), n = static_cast<uint64_t>(exact.n), k = static_cast<uint64_t>(exact.k);
  const bool made = lt_->layout_create(&p.a, t, k, n, exact.k) == ok &&  // W: [k, n] column-major
                    lt_->layout_create(&p.b, t, k, m, exact.k) == ok &&  // x: [k, m]
                    lt_->layout_create(&p.c, t, n, m, exact.n) == ok;    // out: [n, m]
  if (!made) {
    for (cublasLtMatrixLayout_t l : {p.a, p.b, p.c})
      if (l != nullptr) lt_->layout_destroy(l);
    return nullptr;
  }
  return &plans_.emplace(exact, p).first->second;
}

cublasStatus_t lt_matmul::run(const gemm_args& g, cudaStream_t stream) {
  const key exact{g.m, g.n, g.k, static_cast<int>(g.type), align_of(g)};
  plan* p = plan_for(exact);
  if (p == nullptr) return gemm_ex(*blas_, handle_, g);
  if (p->state != plan::settled) settle(*p, exact, g, stream);
  const cublasStatus_t s = launch(*p, p->pick, g, stream);
  if (s == ok || p->pick.gemm_ex) return s;
  // An algorithm that passed cublasLtMatmulAlgoCheck but does not run here: GemmEx for this shape.
  cudaGetLastError();
  p->pick = choice{};
  return gemm_ex(*blas_, handle_, g);
}

void lt_matmul::settle(plan& p, const key& exact, const gemm_args& g, cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {  // unknown: never time then
    cudaGetLastError();
    capture = cudaStreamCaptureStatusActive;
  }
  key bucket = exact;
  bucket.m = m_bucket(exact.m);
  auto tuned = tuned_.find(bucket);
  if (tuned == tuned_.end()) {
    if (capture == cudaStreamCaptureStatusNone) {
      tuned = tuned_.emplace(bucket, tune(p, exact, g, stream)).first;
    } else {  // no timing inside a capture: the first heuristic now, tuning at the next eager call
      if (p.state == plan::empty) {
        cublasLtMatmulHeuristicResult_t first{};
        p.pick = heuristics(p, exact.align, 1, &first) > 0 ? choice{false, first.algo} : choice{};
        p.state = plan::provisional;
      }
      return;
    }
  }
  if (fits(p, tuned->second)) {
    p.pick = tuned->second;
  } else {  // the bucket's algorithm does not serve this row count
    cublasLtMatmulHeuristicResult_t first{};
    p.pick = heuristics(p, exact.align, 1, &first) > 0 ? choice{false, first.algo} : choice{};
  }
  p.state = plan::settled;
}

int lt_matmul::heuristics(const plan& p, int align, int count, cublasLtMatmulHeuristicResult_t* out) {
  const uint32_t bytes = static_cast<uint32_t>(align);
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    if (lt_->pref_set(pref_, attr, &bytes, sizeof bytes) != ok) return 0;
  int found = 0;
  if (lt_->heuristic(lt_handle_, desc_, p.a, p.b, p.c, p.c, pref_, count, out, &found) != ok) return 0;
  int kept = 0;
  for (int i = 0; i < found; ++i)
    if (out[i].state == ok && out[i].workspaceSize <= workspace_bytes_) out[kept++] = out[i];
  return kept;
}

bool lt_matmul::fits(const plan& p, const choice& c) {
  if (c.gemm_ex) return true;
  cublasLtMatmulHeuristicResult_t r{};
  return lt_->check(lt_handle_, desc_, p.a, p.b, p.c, p.c, &c.algo, &r) == ok && r.state == ok &&
         r.workspaceSize <= workspace_bytes_;
}

cublasStatus_t lt_matmul::launch(const plan& p, const choice& c, const gemm_args& g, cudaStream_t stream) {
  if (c.gemm_ex) return gemm_ex(*blas_, handle_, g);
  const float alpha = 1.0f, beta = 0.0f;
  return lt_->matmul(lt_handle_, desc_, &alpha, g.w, p.a, g.x, p.b, &beta, g.out, p.c, g.out, p.c, &c.algo,
                     workspace_, workspace_bytes_, stream);
}

// Times `reps` back-to-back calls of each candidate still in the running, queued behind hold_kernel
// (long enough for the host to queue the whole round, so no launch gap counts and no candidate's
// place in the round matters), with events between the candidates; consecutive calls take the
// weight copies in turn. A candidate whose call fails drops out. False when the stream could not be
// synchronized (the backend's next check reports it).
bool lt_matmul::time_round(const plan& p, const std::vector<gemm_args>& copies, cudaStream_t stream,
                           std::vector<candidate>& cands, int reps) {
  int launches = 0;
  for (const auto& c : cands) launches += c.running ? reps : 0;
  hold_kernel<<<1, 1, 0, stream>>>(std::min<unsigned long long>(3000000, 50000ull + 30000ull * launches));
  cudaEventRecord(events_[0], stream);
  std::vector<bool> failed(cands.size(), false);
  size_t turn = 0;
  for (size_t i = 0; i < cands.size(); ++i) {
    for (int r = 0; r < reps && cands[i].running && !failed[i]; ++r)
      failed[i] = launch(p, cands[i].pick, copies[turn++ % copies.size()], stream) != ok;
    cudaEventRecord(events_[i + 1], stream);
  }
  if (cudaEventSynchronize(events_[cands.size()]) != cudaSuccess) return false;
  for (size_t i = 0; i < cands.size(); ++i) {
    float ms = 0;
    if (failed[i]) {
      cands[i].running = false;
      cands[i].us = cands[i].round_us = never;
    } else if (cands[i].running && cudaEventElapsedTime(&ms, events_[i], events_[i + 1]) == cudaSuccess) {
      cands[i].round_us = 1000.0 * ms / reps;
    }
  }
  return true;
}

// GemmEx's default and up to 16 heuristic candidates on the call's operands (out is overwritten),
// timed as a step runs them: back to back, the weight streamed from memory (a weight smaller than
// three L2 caches is copied so that calls rotate over copies that do not fit in L2). A warm-up call
// each (kernels load lazily), a round of 2 calls each, then two rounds of 4 calls each for those
// within 15% of the fastest; the fastest of those wins. (In the report, a candidate that did not
// make the later rounds shows its first round's time.)
lt_matmul::choice lt_matmul::tune(const plan& p, const key& exact, const gemm_args& g, cudaStream_t stream) {
  const auto start = std::chrono::steady_clock::now();
  constexpr int max_candidates = 16;
  cublasLtMatmulHeuristicResult_t found[max_candidates];
  const int n = heuristics(p, exact.align, max_candidates, found);
  std::vector<candidate> cands(1);  // GemmEx first
  for (int i = 0; i < n; ++i) cands.push_back({choice{false, found[i].algo}});
  while (events_.size() < cands.size() + 1) {
    cudaEvent_t e = nullptr;
    if (cudaEventCreate(&e) != cudaSuccess) break;
    events_.push_back(e);
  }
  // Weight copies at 256-byte boundaries (at least as aligned as the weight), freed in stream order.
  const size_t w_bytes = static_cast<size_t>(g.n * g.k) * 2, stride = (w_bytes + 255) / 256 * 256;
  const size_t most = static_cast<size_t>(3) * l2_bytes_;
  const size_t extra = w_bytes >= most ? 0 : std::min<size_t>(7, (most + w_bytes - 1) / w_bytes - 1);
  std::vector<gemm_args> copies{g};
  void* copy_memory = nullptr;
  if (extra > 0 && cudaMallocAsync(&copy_memory, extra * stride, stream) == cudaSuccess) {
    for (size_t c = 0; c < extra; ++c) {
      char* to = static_cast<char*>(copy_memory) + c * stride;
      cudaMemcpyAsync(to, g.w, w_bytes, cudaMemcpyDeviceToDevice, stream);
      copies.push_back(g);
      copies.back().w = to;
    }
  }
  cudaGetLastError();  // without memory for copies, the calls share the weight
  if (n > 0 && events_.size() >= cands.size() + 1) {
    for (auto& c : cands) c.running = launch(p, c.pick, g, stream) == ok;
    if (time_round(p, copies, stream, cands, 2)) {
      double fastest = never;
      for (auto& c : cands) {
        c.us = c.running ? c.round_us : never;
        fastest = std::min(fastest, c.us);
      }
      for (auto& c : cands) {
        c.running = c.running && c.us <= 1.15 * fastest;
        if (c.running) c.us = never;  // the later rounds' calls time it
      }
      for (int round = 0; round < 2; ++round) {
        if (!time_round(p, copies, stream, cands, 4)) break;
        for (auto& c : cands)
          if (c.running) c.us = std::min(c.us, c.round_us);
      }
    }
    cudaGetLastError();  // a launch error of a candidate is not the backend's
  }
  if (copy_memory != nullptr) cudaFreeAsync(copy_memory, stream);
  // The fastest finalist (timed in the later rounds); the fastest of all when those did not run.
  size_t best = 0;
  bool final = false;
  for (size_t i = 0; i < cands.size(); ++i)
    if (cands[i].running && cands[i].us < never && (!final || cands[i].us < cands[best].us)) {
      best = i;
      final = true;
    }
  for (size_t i = 1; i < cands.size() && !final; ++i)
    if (cands[i].us < cands[best].us) best = i;
  tuning t;
  t.at = exact;
  t.candidates = n;
  t.best = static_cast<int>(best) - 1;
  t.gemm_ex_us = cands[0].us;
  t.first_us = n > 0 ? cands[1].us : never;
  t.best_us = cands[best].us;
  t.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  tunings_.push_back(t);
  return cands[best].pick;
}

std::string lt_matmul::report(bool per_shape) const {
  double ms = 0;
  int lt_won = 0;
  for (const auto& t : tunings_) {
    ms += t.ms;
    if (t.best >= 0) ++lt_won;
  }
  char line[256];
  std::snprintf(line, sizeof line, "matmul tuning (cuBLASLt): %zu shapes tuned in %.0f ms; a cuBLASLt algorithm beat "
                "GemmEx's default in %d\n", tunings_.size(), ms, lt_won);
  std::string out = line;
  if (!per_shape) return out;
  for (const auto& t : tunings_) {
    const std::string pick = t.best < 0 ? std::string("GemmEx") : "heuristic #" + std::to_string(t.best);
    std::snprintf(line, sizeof line,
                  "  %s m %lld n %lld k %lld: GemmEx %.1f us, Lt first %.1f us, best %.1f us (%s of %d) in %.1f ms\n",
                  t.at.type == CUDA_R_16F ? "f16" : "bf16", static_cast<long long>(t.at.m),
                  static_cast<long long>(t.at.n), static_cast<long long>(t.at.k), t.gemm_ex_us, t.first_us, t.best_us,
                  pick.c_str(), t.candidates, t.ms);
    out += line;
  }
  return out;
}

}  // namespace troupe::kernels::cuda
