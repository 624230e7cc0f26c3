// Stands in for the CUDA device query in builds made without nvcc: there are no GPUs.
#include "kernels/device.hpp"

namespace troupe::kernels {

bool cuda_compiled() { return false; }

std::vector<gpu_info> list_gpus(std::string* why) {
  if (why) *why = "this build has no CUDA backend (nvcc was not found at configure time)";
  return {};
}

}  // namespace troupe::kernels
