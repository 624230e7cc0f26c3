// The CUDA backend's public face (plain C++, no CUDA headers): how to make one and its extras.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kernels/backend.hpp"

namespace troupe::kernels {

/// A backend on CUDA device `device` computing in `compute` (bf16 or f16): weights are converted
/// once at upload, activations and the KV cache are kept in `compute`, matrix products go through
/// cuBLAS with float32 accumulation. Returns nullptr (with the reason in *why) when the build has
/// no CUDA or the device cannot be used.
std::unique_ptr<backend> make_cuda_backend(int device, dtype compute, std::string* why = nullptr);

/// The first CUDA or cuBLAS error the backend met, "" while there was none (or for a backend that
/// is not a CUDA one). After an error the backend's ops do nothing and copies to the host give NaN.
std::string cuda_backend_error(const backend& be);

/// Dummy loads: from now on the CUDA backend ignores the host data of upload_weight (which may be
/// null) and fills each weight on the GPU with seeded uniform random values (matrices in
/// +-1/sqrt(columns), vectors near 1), as vLLM's dummy load format. False for other backends.
bool cuda_set_dummy_weights(backend& be, uint64_t seed);

/// Where a CUDA backend sends matrix-vector products (one row of activations): true (the default)
/// uses troupe's own kernel, false cuBLAS. False for other backends.
bool cuda_use_own_gemv(backend& be, bool on);

/// Picks the matrix-vector kernel: 0 cuBLAS, 1 troupe's kernel with the tiling chosen by size (the
/// default), 2 to 13 one fixed tiling each. False for other backends or an unknown variant. For
/// benchmarks and tests.
bool cuda_set_gemv_variant(backend& be, int variant);

/// The largest group (query heads a KV head) whose small decode batches take RoPE and the K/V write
/// into decode attention: 1 (MHA only) by default, up to 8. False for other backends or another
/// value. For tests (the kernel is correct for every group) and benchmarks.
bool cuda_set_fused_rope_group(backend& be, int group);

/// Where a CUDA backend sends attention when a sequence has several new rows: true (the default)
/// uses the tensor-core prefill kernel where head_dim allows, false the per-row kernel.
bool cuda_use_prefill_kernel(backend& be, bool on);

/// Where a CUDA backend sends matrix products of several rows: with `on` (the default, unless the
/// environment has TROUPE_MATMUL=gemmex), products of up to max_rows rows go to cuBLASLt with an
/// algorithm chosen per shape (the fastest of its heuristic candidates and cublasGemmEx's default,
/// timed once at the shape's first call outside a graph capture) and larger ones to cublasGemmEx's
/// default algorithm; without, every product goes to GemmEx. The default limit, 512 rows (every size
/// with TROUPE_MATMUL=lt-all), keeps the tuned path where it measured faster on an H100: decode
/// batches, not prompt chunks (bench/RESULTS.md). False for other backends, and for `on` where
/// cuBLASLt could not be loaded (GemmEx then stays).
bool cuda_use_lt_matmul(backend& be, bool on, int64_t max_rows = 512);

/// What choosing cuBLASLt algorithms has cost and chosen: a summary line (shapes tuned, milliseconds
/// spent), then with per_shape a line per tuned shape (GemmEx, cuBLASLt's first and the best
/// candidate's microseconds). "" for other backends or without cuBLASLt.
std::string cuda_matmul_report(backend& be, bool per_shape = false);

/// Starts (true) or stops timing every op of a CUDA backend with CUDA events. False for other backends.
bool cuda_profile(backend& be, bool on);

/// A table of GPU time per op since profiling started, and the fraction of the time from the first
/// op's start to the last op's end that ops ran (the rest: launch gaps and host work). Clears the
/// records. "" for other backends.
std::string cuda_profile_report(backend& be);

/// The card's copy bandwidth in bytes/s, counting bytes read plus written (1 GiB device-to-device
/// copies, median of 10), and its cuBLAS bf16 GEMM rate in FLOP/s (8192^3 on random data, median of
/// 10). 0 for other backends or when the memory is not there. Benchmarks use them as the ceilings.
double cuda_copy_bandwidth(backend& be);
double cuda_gemm_rate(backend& be);

}  // namespace troupe::kernels
