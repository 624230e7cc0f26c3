// Matrix products through cuBLASLt with an algorithm chosen per shape: the first time a shape runs
// outside a graph capture, cuBLASLt's heuristic candidates and cublasGemmEx's default are timed on the
// call's own operands and the fastest is kept (kernels/cuda/lt_matmul.cu).
#pragma once

#include <cuda_runtime.h>

#include <compare>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/cublas_loader.hpp"

namespace troupe::kernels::cuda {

/// Row-major out[m, n] = x[m, k] · w[n, k]ᵀ in `type` (bf16 or f16) with float32 accumulation.
struct gemm_args {
  cudaDataType_t type = CUDA_R_16BF;
  int64_t m = 0, n = 0, k = 0;
  const void* x = nullptr;
  const void* w = nullptr;
  void* out = nullptr;
};

/// cublasGemmEx with its default algorithm on the handle's stream.
cublasStatus_t gemm_ex(const cublas_api& blas, cublasHandle_t handle, const gemm_args& g);

class lt_matmul {
 public:
  /// Null, with the reason in *why, where cuBLASLt cannot be loaded or set up. `handle` (bound to the
  /// stream run() is given) serves the GemmEx candidate; `workspace` is fixed memory that every call
  /// may use (graphs record it).
  static std::unique_ptr<lt_matmul> create(const cublas_api* blas, cublasHandle_t handle, void* workspace,
                                           size_t workspace_bytes, std::string* why);
  ~lt_matmul();
  lt_matmul(const lt_matmul&) = delete;
  lt_matmul& operator=(const lt_matmul&) = delete;

  /// Runs the product on `stream`. A shape not yet tuned is tuned now (the stream is synchronized),
  /// unless the stream is capturing a graph: then a capture records cuBLASLt's first heuristic
  /// algorithm (tuning waits for the shape's next call outside a capture).
  cublasStatus_t run(const gemm_args& g, cudaStream_t stream);

  /// What tuning cost and chose: a summary line, then (per_shape) one line per tuned shape.
  std::string report(bool per_shape) const;

  /// Rows of activations whose tuning a product of m rows shares: exact up to 8 (powers of two), a
  /// multiple of 8 up to 256 (the decode graphs' batch sizes), then four steps per power of two.
  static int64_t m_bucket(int64_t m);

 private:
  struct key {
    int64_t m, n, k;
    int type, align;
    auto operator<=>(const key&) const = default;
  };
  struct choice {
    bool gemm_ex = true;  // cublasGemmEx's default; else algo
    cublasLtMatmulAlgo_t algo{};
  };
  struct plan {  // one exact shape: its layouts and the choice it runs with
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    choice pick;
    enum { empty, provisional, settled } state = empty;
  };
  struct candidate {  // one algorithm while a shape is tuned
    choice pick;
    double us = std::numeric_limits<double>::infinity();  // microseconds a call: the best so far
    double round_us = 0;                                   // the last round's
    bool running = true;          // launched fine and still among the fastest
  };
  struct tuning {  // one tuned bucket, for the report
    key at;
    int candidates = 0, best = -1;  // best: -1 GemmEx, else the heuristic's rank
    double gemm_ex_us = 0, first_us = 0, best_us = 0, ms = 0;
  };

  lt_matmul() = default;
  plan* plan_for(const key& exact);
  void settle(plan& p, const key& exact, const gemm_args& g, cudaStream_t stream);
  choice tune(const plan& p, const key& exact, const gemm_args& g, cudaStream_t stream);
  bool time_round(const plan& p, const std::vector<gemm_args>& copies, cudaStream_t stream,
                  std::vector<candidate>& cands, int reps);
  int heuristics(const plan& p, int align, int count, cublasLtMatmulHeuristicResult_t* out);
  bool fits(const plan& p, const choice& c);
  cublasStatus_t launch(const plan& p, const choice& c, const gemm_args& g, cudaStream_t stream);
  void drop_plans();

  const cublas_api* blas_ = nullptr;
  const cublaslt_api* lt_ = nullptr;
  cublasHandle_t handle_ = nullptr;
  cublasLtHandle_t lt_handle_ = nullptr;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatmulPreference_t pref_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  size_t l2_bytes_ = size_t{50} << 20;  // the device's L2 cache (tuning streams weights past it)
  std::map<key, plan> plans_;     // by exact shape
  std::map<key, choice> tuned_;   // by bucket (m_bucket)
  std::vector<tuning> tunings_;
  std::vector<cudaEvent_t> events_;
};

}  // namespace troupe::kernels::cuda
