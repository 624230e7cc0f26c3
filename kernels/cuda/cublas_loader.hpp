// cuBLAS and cuBLASLt loaded at run time (dlopen), so a CUDA build starts, and falls back to the CPU,
// on machines without the CUDA toolkit's libraries; the backend reaches them only through these pointers.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>

#include <string>

namespace troupe::kernels::cuda {

/// The cuBLAS entry points the backend uses.
struct cublas_api {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetWorkspace_v2) set_workspace = nullptr;
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
};

/// Loads libcublas.so.13 (else libcublas.so) once; null, with the reason in *why, when it or one of
/// the entry points is missing.
const cublas_api* load_cublas(std::string* why);

/// The cuBLASLt entry points of the per-shape matrix products (kernels/cuda/lt_matmul.cu).
struct cublaslt_api {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmulAlgoCheck) check = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
};

/// Loads libcublasLt.so.13 (else libcublasLt.so) once; null, with the reason in *why, when it or one
/// of the entry points is missing (the backend then keeps cublasGemmEx for every product).
const cublaslt_api* load_cublaslt(std::string* why);

}  // namespace troupe::kernels::cuda
