// cuBLAS loaded at run time (dlopen), so a CUDA build starts, and falls back to the CPU, on machines
// without the CUDA toolkit's libraries; the backend reaches cuBLAS only through these pointers.
#pragma once

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

}  // namespace troupe::kernels::cuda
