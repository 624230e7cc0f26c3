// Shared device helpers of the CUDA kernels: element conversions, 16-byte vectors, reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

using bf16 = __nv_bfloat16;
using f16 = __half;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(f16 x) { return __half2float(x); }

template <class T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ f16 from_f<f16>(float x) { return __float2half_rn(x); }

/// Rounds through T and back: what storing a float in T keeps.
template <class T>
__device__ __forceinline__ float round_to(float x) { return to_f(from_f<T>(x)); }

/// Eight 2-byte elements in one 16-byte load or store.
template <class T>
struct alignas(16) vec8 {
  T v[8];
};

/// A 16-byte read-only load (weights streamed once).
template <class T>
__device__ __forceinline__ vec8<T> load_stream(const vec8<T>* p) {
  int4 raw = __ldg(reinterpret_cast<const int4*>(p));
  vec8<T> v;
  *reinterpret_cast<int4*>(&v) = raw;
  return v;
}

/// Dot product of eight pairs in float32.
template <class T>
__device__ __forceinline__ float dot8(const vec8<T>& a, const vec8<T>& b) {
  float s = 0.0f;
#pragma unroll
  for (int e = 0; e < 8; ++e) s += to_f(a.v[e]) * to_f(b.v[e]);
  return s;
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float x) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_sum(x);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  float total = lane < warps ? partial[lane] : 0.0f;
  return warp_sum(total);
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

inline unsigned blocks_for(int64_t n, int threads, int64_t cap = 65535LL * 32) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < cap ? b : cap);
}

/// Programmatic dependent launch (sm_90 and later): a kernel started with launch() may begin while
/// the kernel before it on the stream finishes, so launch latency and its prologue overlap that
/// kernel's tail. Such a kernel calls wait_for_inputs() before it touches memory that earlier work
/// writes; that also lets the next kernel launch. Off (plain stream order) before sm_90 or with
/// TROUPE_PDL=0; without the launch attribute wait_for_inputs() does nothing.
void set_dependent_launch(bool on);
bool dependent_launch();

__device__ __forceinline__ void wait_for_inputs() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/// Asks for the 16 bytes at p to be brought into L2 (no register result; for data that does not
/// depend on earlier kernels, before wait_for_inputs()).
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

template <class... Params, class... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = dependent_launch() ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

/// Calls f with a value of the CUDA element type of t (bf16 or f16; float for f32).
template <class F>
void dispatch_type(dtype t, F&& f) {
  switch (t) {
    case dtype::bf16: f(bf16{}); break;
    case dtype::f16: f(f16{}); break;
    case dtype::f32: f(float{}); break;
  }
}

}  // namespace troupe::kernels::cuda
