// What accelerators this process can use, found at run time (the binary works without any).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace troupe::kernels {

struct gpu_info {
  int index = 0;
  std::string name;
  int sm_major = 0;
  int sm_minor = 0;
  uint64_t total_memory = 0;
  uint64_t free_memory = 0;
};

/// True when this build has the CUDA backend compiled in.
bool cuda_compiled();

/// The usable CUDA GPUs; empty without a driver, without a GPU, or in a build without CUDA.
/// `why` (optional) receives the reason when the list is empty.
std::vector<gpu_info> list_gpus(std::string* why = nullptr);

}  // namespace troupe::kernels
