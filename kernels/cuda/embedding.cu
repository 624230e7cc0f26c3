// Embedding lookup: one block per token copies its table row, 16 bytes at a time where aligned.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/embedding.cuh"

namespace troupe::kernels::cuda {
namespace {

template <class T>
__global__ void embedding_kernel(const T* __restrict__ table, int64_t vocab, int64_t hidden,
                                 const int32_t* __restrict__ ids, T* __restrict__ out, bool vectorised) {
  wait_for_inputs();
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  T* dst = out + t * hidden;
  if (id < 0 || id >= vocab) {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = from_f<T>(0.0f);
    return;
  }
  const T* src = table + int64_t{id} * hidden;
  if (vectorised) {
    for (int64_t i = threadIdx.x; i < hidden / 8; i += blockDim.x)
      reinterpret_cast<vec8<T>*>(dst)[i] = reinterpret_cast<const vec8<T>*>(src)[i];
  } else {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = src[i];
  }
}

}  // namespace

cudaError_t embedding(dtype type, const void* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                      int64_t tokens, void* out, cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  const bool vec = type != dtype::f32 && hidden % 8 == 0 && aligned16(table) && aligned16(out);
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto x) {
    using T = decltype(x);
    err = launch(embedding_kernel<T>, static_cast<unsigned>(tokens), 128, 0, stream, static_cast<const T*>(table),
               vocab, hidden, ids, static_cast<T*>(out), vec);
  });
  return err;
}

}  // namespace troupe::kernels::cuda
