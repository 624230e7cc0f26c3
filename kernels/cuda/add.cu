// Elementwise add, and the bias add that follows a cuBLAS matrix product.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace troupe::kernels::cuda {
namespace {

template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, int64_t n) {
  wait_for_inputs();  // out may alias a or b
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}

template <class T>
__global__ void bias_kernel(T* __restrict__ out, const float* __restrict__ bias, int64_t n, int64_t cols) {
  wait_for_inputs();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = from_f<T>(to_f(out[i]) + bias[i % cols]);
}

}  // namespace

cudaError_t add(dtype type, const void* a, const void* b, void* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    err = launch(add_kernel<T>, blocks_for(n, 256, 8192), 256, 0, stream, static_cast<const T*>(a),
               static_cast<const T*>(b), static_cast<T*>(out), n);
  });
  return err;
}

cudaError_t add_bias(dtype type, void* out, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return cudaSuccess;
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    err = launch(bias_kernel<T>, blocks_for(n, 256, 8192), 256, 0, stream, static_cast<T*>(out), bias, n, cols);
  });
  return err;
}

}  // namespace troupe::kernels::cuda
