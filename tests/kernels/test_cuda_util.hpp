// Helpers of the CUDA tests: a GPU backend or a skip, identical inputs on both backends, error metrics.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/cuda/cuda_backend.hpp"

namespace troupe::cuda_test {

using namespace troupe::kernels;

/// The CUDA backend on GPU 0, or null after a warning where there is none (the test then returns).
inline std::unique_ptr<backend> gpu_or_skip(dtype compute) {
  std::string why;
  auto be = make_cuda_backend(0, compute, &why);
  if (!be) WARN("no usable GPU, CUDA test skipped: " << why);
  return be;
}

inline std::vector<float> random_values(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> download(backend& be, const tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  be.copy_to_host(t, v);
  return v;
}

/// A tensor of the backend's compute type holding values (rounded to that type).
inline tensor upload(backend& be, const std::vector<float>& values, shape dims) {
  tensor t = be.alloc(dims);
  be.copy_to_device(values, t);
  return t;
}

/// A buffer whose every element is NaN, so an element the op forgets to write shows.
inline tensor poisoned(backend& be, shape dims) {
  return upload(be, std::vector<float>(static_cast<size_t>(dims.numel()), std::nanf("")), dims);
}

/// values rounded to the GPU's compute type (through the GPU itself), for the CPU reference.
inline std::vector<float> rounded(backend& gpu, const std::vector<float>& values) {
  return download(gpu, upload(gpu, values, shape{static_cast<int64_t>(values.size())}));
}

/// max |got - want| / max |want|; infinity when got has a NaN or the sizes differ.
inline double max_rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double err = 0, top = 1e-30;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) || std::isnan(want[i])) return INFINITY;
    err = std::max(err, std::fabs(double(got[i]) - double(want[i])));
    top = std::max(top, std::fabs(double(want[i])));
  }
  return err / top;
}

/// ||got - want||_2 / ||want||_2; infinity on NaN.
inline double l2_rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * double(want[i]);
  }
  return std::sqrt(num / den);
}

/// Tolerance on max_rel_error for results rounded once or twice to the compute type.
inline double tolerance(dtype t) { return t == dtype::bf16 ? 1.6e-2 : 2.5e-3; }

}  // namespace troupe::cuda_test
