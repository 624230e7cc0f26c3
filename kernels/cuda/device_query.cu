// Finds the CUDA GPUs at run time through the (statically linked) CUDA runtime.
#include <cuda_runtime.h>

#include "kernels/device.hpp"
#include "kernels/tensor.hpp"

namespace troupe::kernels {

bool cuda_compiled() { return true; }

std::vector<gpu_info> list_gpus(std::string* why) {
  std::vector<gpu_info> out;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) *why = cudaGetErrorString(err);
    cudaGetLastError();
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    gpu_info g;
    g.index = i;
    g.name = prop.name;
    g.sm_major = prop.major;
    g.sm_minor = prop.minor;
    g.total_memory = prop.totalGlobalMem;
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      g.free_memory = free_b;
    out.push_back(g);
  }
  if (out.empty() && why) *why = "no CUDA device found";
  return out;
}

}  // namespace troupe::kernels
