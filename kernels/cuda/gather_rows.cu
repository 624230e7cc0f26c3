// Row gathering (the rows whose logits are wanted): one block per output row.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace troupe::kernels::cuda {
namespace {

template <class T>
__global__ void gather_kernel(const T* __restrict__ x, int64_t x_rows, int64_t cols, const int32_t* __restrict__ rows,
                              T* __restrict__ out) {
  wait_for_inputs();
  const int64_t i = blockIdx.x;
  const int32_t r = rows[i];
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    out[i * cols + j] = (r >= 0 && r < x_rows) ? x[int64_t{r} * cols + j] : from_f<T>(0.0f);
}

}  // namespace

cudaError_t gather_rows(dtype type, const void* x, int64_t x_rows, int64_t cols, const int32_t* rows, int64_t count,
                        void* out, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    err = launch(gather_kernel<T>, static_cast<unsigned>(count), 256, 0, stream, static_cast<const T*>(x), x_rows, cols,
               rows, static_cast<T*>(out));
  });
  return err;
}

}  // namespace troupe::kernels::cuda
