// Element-type conversion of device buffers, and seeded random fills (dummy weights).
#include "kernels/cuda/convert.cuh"
#include "kernels/cuda/cuda_common.cuh"

namespace troupe::kernels::cuda {
namespace {

template <class S, class D>
__global__ void convert_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = from_f<D>(to_f(src[i]));
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <class D>
__global__ void random_kernel(D* __restrict__ dst, int64_t n, float center, float amplitude, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    uint64_t r = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(i)));
    float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    dst[i] = from_f<D>(center + amplitude * (2.0f * u - 1.0f));
  }
}

}  // namespace

cudaError_t convert(dtype src_type, const void* src, dtype dst_type, void* dst, int64_t n,
                    cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  dispatch_type(src_type, [&](auto s) {
    dispatch_type(dst_type, [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      convert_kernel<S, D><<<blocks_for(n, 256, 4096), 256, 0, stream>>>(static_cast<const S*>(src),
                                                                           static_cast<D*>(dst), n);
    });
  });
  return cudaGetLastError();
}

cudaError_t fill_random(dtype type, void* dst, int64_t n, float center, float amplitude, uint64_t seed,
                        cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  dispatch_type(type, [&](auto d) {
    using D = decltype(d);
    random_kernel<D><<<blocks_for(n, 256, 4096), 256, 0, stream>>>(static_cast<D*>(dst), n, center, amplitude, seed);
  });
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
