// The card's free memory and its two measured ceilings (copy bandwidth, bf16 GEMM rate), for sizing
// the KV cache and for roofline fractions in benchmarks.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "kernels/cuda/cublas_loader.hpp"
#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_backend_impl.cuh"

namespace troupe::kernels {

namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

__global__ void fill_random_bf16(__nv_bfloat16* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16(float(h & 0xffff) / 65536.0f - 0.5f);
  }
}

}  // namespace

double cuda_copy_bandwidth(backend& be) {
  if (dynamic_cast<cuda::cuda_backend*>(&be) == nullptr) return 0;
  be.synchronize();
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
    cudaGetLastError();
    cudaFree(a);
    return 0;
  }
  cudaMemset(a, 1, bytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> rates;
  for (int i = 0; i < 12; ++i) {
    cudaEventRecord(e0);
    cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 2 && ms > 0) rates.push_back(2.0 * double(bytes) / (ms * 1e-3));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  cudaGetLastError();
  return median_of(rates);
}

double cuda_gemm_rate(backend& be) {
  if (dynamic_cast<cuda::cuda_backend*>(&be) == nullptr) return 0;
  const auto* blas = cuda::load_cublas(nullptr);
  if (blas == nullptr) return 0;
  be.synchronize();
  const int n = 8192;
  const size_t bytes = size_t(n) * n * 2;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess ||
      cudaMalloc(&c, bytes) != cudaSuccess) {
    cudaGetLastError();
    cudaFree(a);
    cudaFree(b);
    return 0;
  }
  fill_random_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(a), size_t(n) * n, 1u);
  fill_random_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(b), size_t(n) * n, 2u);
  cublasHandle_t h = nullptr;
  std::vector<double> rates;
  if (blas->create(&h) == CUBLAS_STATUS_SUCCESS) {
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    const float alpha = 1, beta = 0;
    for (int i = 0; i < 12; ++i) {
      cudaEventRecord(e0);
      blas->gemm_ex(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n, &beta, c,
                    CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      cudaEventRecord(e1);
      cudaEventSynchronize(e1);
      float ms = 0;
      cudaEventElapsedTime(&ms, e0, e1);
      if (i >= 2 && ms > 0) rates.push_back(2.0 * n * double(n) * n / (ms * 1e-3));
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    blas->destroy(h);
  }
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  cudaGetLastError();
  return median_of(rates);
}

}  // namespace troupe::kernels
