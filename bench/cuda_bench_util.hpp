// Timing helpers the cuda_bench sources share.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "config/model_config.hpp"
#include "kernels/backend.hpp"

namespace troupe::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds per call over `samples` event pairs (after `warm` more), each around `batch` calls
// of call(i) issued back to back, as a graph issues them, so the host's launch time is not counted.
template <class F>
double median_call_seconds(int samples, int warm, int batch, F&& call) {
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> times;
  for (int i = 0, issued = 0; i < warm + samples; ++i) {
    cudaEventRecord(e0);
    for (int j = 0; j < batch; ++j) call(issued++);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= warm) times.push_back(ms * 1e-3 / batch);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return median(times);
}

// Seconds per call of f, run `reps` times back to back after a warm-up (host clock around a sync):
// the GPU time when the op is longer than its launch, else the launch rate.
template <class F>
double per_call(kernels::backend& be, int reps, F&& f) {
  for (int i = 0; i < 3; ++i) f();
  be.synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  be.synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / reps;
}

// cuda_bench --prefill-attention (bench/cuda_bench_prefill.cpp).
void prefill_attention_bench();

// cuda_bench --read-bandwidth (bench/cuda_bench_read.cu): reads in order and in random chunks.
void read_bandwidth_bench();

// cuda_bench --overlap P D C (bench/cuda_bench_overlap.cpp): a mixed step's prompt rows and decode
// rows as two passes on two streams, against the one pass of today.
void overlap_bench(const config::model_config& cfg, const std::string& label, int prompt_rows, int decode_rows,
                   int context);

}  // namespace troupe::bench
