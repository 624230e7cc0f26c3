// Asynchronous copies global -> shared memory (cp.async, sm_80 and later), shared by the attention kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace troupe::kernels::cuda {

// 16 bytes global -> shared without passing through registers; zeros when !valid.
// The .ca form (through L1), not .cg (L1 bypassed): on an H100 the .cg copies of a warp reached L2
// as 64-byte requests that looked each 32-byte sector up twice (Nsight Compute, decode attention of
// 256 sequences: 177M L2 sector lookups for 88M sectors read from memory, L2 the busiest unit at 90%),
// while .ca sends whole 128-byte lines once (89M lookups); decode attention went from 2.70 to 2.90
// TB/s (MHA) and 2.56 to 2.73 (GQA 32/8).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const auto d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending));
}

}  // namespace troupe::kernels::cuda
