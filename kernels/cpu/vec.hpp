// Small vector loops of the CPU backend, written so the compiler keeps eight lanes in registers.
#pragma once

#include <cstdint>

namespace troupe::kernels::cpu {

/// The dot product of a and b (n elements), with eight independent partial sums.
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  for (int j = 0; j < 4; ++j) acc[j] += acc[j + 4];  // pairwise: a short dependency chain
  float s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

/// y += w * x over n elements; x and y must not overlap.
inline void axpy(float w, const float* __restrict x, float* __restrict y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) y[i + j] += w * x[i + j];
  for (; i < n; ++i) y[i] += w * x[i];
}

}  // namespace troupe::kernels::cpu
