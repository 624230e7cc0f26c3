// Timing helpers the cuda_bench sources share.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

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

void prefill_attention_bench();

}  // namespace troupe::bench
