// Whether kernels start with programmatic dependent launch (see launch() in cuda_common.cuh).
#include <atomic>

#include "kernels/cuda/cuda_common.cuh"

namespace troupe::kernels::cuda {
namespace {
std::atomic<bool> dependent{false};
}

void set_dependent_launch(bool on) { dependent.store(on, std::memory_order_relaxed); }
bool dependent_launch() { return dependent.load(std::memory_order_relaxed); }

}  // namespace troupe::kernels::cuda
