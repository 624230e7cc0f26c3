// Stands in for the CUDA device query and backend in builds made without nvcc: there are no GPUs.
#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/device.hpp"

namespace troupe::kernels {

bool cuda_compiled() { return false; }

std::vector<gpu_info> list_gpus(std::string* why) {
  if (why) *why = "this build has no CUDA backend (nvcc was not found at configure time)";
  return {};
}

std::unique_ptr<backend> make_cuda_backend(int, dtype, std::string* why) {
  if (why) *why = "this build has no CUDA backend (nvcc was not found at configure time)";
  return nullptr;
}

std::string cuda_backend_error(const backend&) { return {}; }

bool cuda_set_dummy_weights(backend&, uint64_t) { return false; }

bool cuda_use_own_gemv(backend&, bool) { return false; }

bool cuda_set_gemv_variant(backend&, int) { return false; }

bool cuda_set_fused_rope_group(backend&, int) { return false; }

bool cuda_use_prefill_kernel(backend&, bool) { return false; }

bool cuda_use_lt_matmul(backend&, bool, int64_t) { return false; }

std::string cuda_matmul_report(backend&, bool) { return {}; }

bool cuda_profile(backend&, bool) { return false; }

std::string cuda_profile_report(backend&) { return {}; }

double cuda_copy_bandwidth(backend&) { return 0; }

double cuda_gemm_rate(backend&) { return 0; }

}  // namespace troupe::kernels
