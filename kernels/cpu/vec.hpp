// Small vector loops of the CPU backend, written so the compiler keeps eight lanes in registers.
// Every dot product here sums in the same order, whichever function computes it, so a result never
// depends on how many rows were computed together (batch invariance).
#pragma once

#include <cstdint>

namespace troupe::kernels::cpu {

/// The end of a dot product: the eight lane sums pairwise, then the elements past the last full lane
/// group [i, n).
inline float finish_dot(float* acc, const float* a, const float* b, int64_t i, int64_t n) {
  for (int j = 0; j < 4; ++j) acc[j] += acc[j + 4];
  float s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

/// The dot product of a and b (n elements), with eight independent partial sums.
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  return finish_dot(acc, a, b, i, n);
}

/// out[r] = dot(x[r], w, n) for four rows x[0..3], loading w once; bitwise equal to four dot calls.
inline void dot4(const float* const* x, const float* w, int64_t n, float* out) {
  float a0[8] = {}, a1[8] = {}, a2[8] = {}, a3[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const float wj = w[i + j];
      a0[j] += x[0][i + j] * wj;
      a1[j] += x[1][i + j] * wj;
      a2[j] += x[2][i + j] * wj;
      a3[j] += x[3][i + j] * wj;
    }
  out[0] = finish_dot(a0, x[0], w, i, n);
  out[1] = finish_dot(a1, x[1], w, i, n);
  out[2] = finish_dot(a2, x[2], w, i, n);
  out[3] = finish_dot(a3, x[3], w, i, n);
}

/// y += w * x over n elements; x and y must not overlap.
inline void axpy(float w, const float* __restrict x, float* __restrict y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) y[i + j] += w * x[i + j];
  for (; i < n; ++i) y[i] += w * x[i];
}

}  // namespace troupe::kernels::cpu
