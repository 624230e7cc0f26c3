// The CPU backend's memory handling, matrix products (OpenBLAS) and elementwise ops.
#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/cpu/sampling_reference.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "kernels/cpu/vec.hpp"

namespace troupe::kernels {

std::unique_ptr<backend> make_cpu_backend(int threads) {
  return std::make_unique<cpu::cpu_backend>(threads);
}

}  // namespace troupe::kernels

namespace troupe::kernels::cpu {
namespace {

constexpr size_t alignment = 64;
// Weights of at most this many elements are multiplied in a plain loop on the calling thread: for
// them OpenBLAS's thread hand-off costs more than the work, and the loop computes every output row
// the same way whatever the number of rows, so small models are exactly batch-invariant.
constexpr int64_t small_weight_elements = 1 << 16;

std::shared_ptr<void> allocate_bytes(size_t nbytes) {
  size_t rounded = (std::max<size_t>(nbytes, 1) + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded);
  TROUPE_CHECK(p != nullptr);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

tensor make_f32(shape dims) {
  tensor t;
  t.dims = dims;
  t.type = dtype::f32;
  t.owner = allocate_bytes(static_cast<size_t>(dims.numel()) * sizeof(float));
  t.data = t.owner.get();
  return t;
}

void check_f32(const tensor& t) { TROUPE_CHECK(t.type == dtype::f32 && t.data != nullptr); }

}  // namespace

cpu_backend::cpu_backend(int threads) {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads_ = threads > 0 ? threads : cores;
  openblas_set_num_threads(threads_);
}

tensor cpu_backend::alloc(shape dims) { return make_f32(dims); }

tensor cpu_backend::alloc_zeroed(shape dims) {
  tensor t = make_f32(dims);
  std::memset(t.data, 0, t.nbytes());
  return t;
}

tensor cpu_backend::upload_weight(dtype type, const void* host, shape dims) {
  bool aligned = reinterpret_cast<uintptr_t>(host) % alignof(float) == 0;
  if (type == dtype::f32 && aligned) {  // zero copy: the caller keeps the memory alive
    tensor t;
    t.dims = dims;
    t.type = dtype::f32;
    t.data = const_cast<void*>(host);
    return t;
  }
  tensor t = make_f32(dims);
  to_float(type, host, t.as<float>(), static_cast<size_t>(dims.numel()));
  return t;
}

tensor cpu_backend::alloc_weight(shape dims) { return make_f32(dims); }

void cpu_backend::fill_weight(dtype type, const void* host, tensor& dst) {
  TROUPE_CHECK(dst.type == dtype::f32);
  to_float(type, host, dst.as<float>(), static_cast<size_t>(dst.numel()));
}

index_tensor cpu_backend::upload_indices(std::span<const int32_t> host, shape dims) {
  TROUPE_CHECK(static_cast<int64_t>(host.size()) == dims.numel());
  index_tensor t;
  t.dims = dims;
  t.owner = allocate_bytes(host.size() * sizeof(int32_t));
  t.data = static_cast<int32_t*>(t.owner.get());
  if (!host.empty()) std::memcpy(t.data, host.data(), host.size_bytes());
  return t;
}

void cpu_backend::copy_to_device(std::span<const float> host, tensor& dst) {
  check_f32(dst);
  TROUPE_CHECK(static_cast<int64_t>(host.size()) == dst.numel());
  std::memcpy(dst.data, host.data(), host.size_bytes());
}

void cpu_backend::copy_to_host(const tensor& src, std::span<float> host) {
  check_f32(src);
  TROUPE_CHECK(static_cast<int64_t>(host.size()) == src.numel());
  std::memcpy(host.data(), src.data, host.size_bytes());
}

void cpu_backend::embedding(const tensor& table, const index_tensor& ids, tensor& out) {
  check_f32(table);
  check_f32(out);
  int64_t hidden = table.dims.row_size(), vocab = table.dims.rows();
  TROUPE_CHECK(out.numel() == ids.numel() * hidden);
  for (int64_t t = 0; t < ids.numel(); ++t) {
    int32_t id = ids.data[t];
    TROUPE_CHECK(id >= 0 && id < vocab);
    std::memcpy(out.as<float>() + t * hidden, table.as<float>() + id * hidden, hidden * sizeof(float));
  }
}

namespace {

void rms_norm_row(const float* x, const float* w, float eps, int64_t n, float* out) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * inv);
}

}  // namespace

void cpu_backend::rms_norm(const tensor& x, const tensor& weight, float eps, tensor& out) {
  check_f32(x);
  check_f32(out);
  int64_t n = weight.numel();
  TROUPE_CHECK(x.dims.row_size() == n && out.numel() == x.numel());
  for (int64_t r = 0; r < x.dims.rows(); ++r)
    rms_norm_row(x.as<float>() + r * n, weight.as<float>(), eps, n, out.as<float>() + r * n);
}

void cpu_backend::add_rms_norm(const tensor& x, tensor& residual, const tensor& weight, float eps,
                               tensor& out) {
  check_f32(x);
  check_f32(residual);
  int64_t n = weight.numel();
  TROUPE_CHECK(x.numel() == residual.numel() && out.numel() == x.numel() && x.dims.row_size() == n);
  float* res = residual.as<float>();
  const float* xs = x.as<float>();
  for (int64_t i = 0; i < x.numel(); ++i) res[i] += xs[i];
  for (int64_t r = 0; r < x.dims.rows(); ++r)
    rms_norm_row(res + r * n, weight.as<float>(), eps, n, out.as<float>() + r * n);
}

void cpu_backend::matmul(const tensor& x, const tensor& weight, const tensor* bias, tensor& out) {
  check_f32(x);
  check_f32(weight);
  check_f32(out);
  const int64_t m = x.dims.rows(), k = x.dims.row_size(), n = weight.dims.rows();
  TROUPE_CHECK(weight.dims.row_size() == k && out.numel() == m * n);
  float* y = out.as<float>();
  if (n * k <= small_weight_elements) {
    const float* xs = x.as<float>();
    for (int64_t j = 0; j < n; ++j) {
      const float* w = weight.as<float>() + j * k;
      int64_t i = 0;
      for (; i + 4 <= m; i += 4) {
        const float* rows[4] = {xs + i * k, xs + (i + 1) * k, xs + (i + 2) * k, xs + (i + 3) * k};
        float four[4];
        dot4(rows, w, k, four);
        for (int r = 0; r < 4; ++r) y[(i + r) * n + j] = four[r];
      }
      for (; i < m; ++i) y[i * n + j] = dot(xs + i * k, w, k);
    }
  } else if (m == 1) {  // decode: a matrix-vector product streams the weight once
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), 1.0f,
                weight.as<float>(), static_cast<int>(k), x.as<float>(), 1, 0.0f, y, 1);
  } else if (m > 1) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, x.as<float>(), static_cast<int>(k), weight.as<float>(),
                static_cast<int>(k), 0.0f, y, static_cast<int>(n));
  }
  if (bias != nullptr && !bias->empty()) {
    TROUPE_CHECK(bias->numel() == n);
    const float* b = bias->as<float>();
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) y[r * n + j] += b[j];
  }
}

void cpu_backend::silu_and_mul(const tensor& gate_up, tensor& out) {
  const int64_t rows = gate_up.dims.rows(), n = gate_up.dims.row_size() / 2;
  TROUPE_CHECK(gate_up.dims.row_size() == 2 * n && out.numel() == rows * n);
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up.as<float>() + r * 2 * n;
    const float* u = g + n;
    float* o = out.as<float>() + r * n;
    for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

void cpu_backend::add(const tensor& a, const tensor& b, tensor& out) {
  TROUPE_CHECK(a.numel() == b.numel() && out.numel() == a.numel());
  const float* x = a.as<float>();
  const float* y = b.as<float>();
  float* o = out.as<float>();
  for (int64_t i = 0; i < a.numel(); ++i) o[i] = x[i] + y[i];
}

void cpu_backend::gather_rows(const tensor& x, const index_tensor& rows, tensor& out) {
  int64_t n = x.dims.row_size();
  TROUPE_CHECK(out.numel() == rows.numel() * n);
  for (int64_t i = 0; i < rows.numel(); ++i) {
    int32_t r = rows.data[i];
    TROUPE_CHECK(r >= 0 && r < x.dims.rows());
    std::memcpy(out.as<float>() + i * n, x.as<float>() + r * n, n * sizeof(float));
  }
}

void cpu_backend::sample(const tensor& logits, const sampling_batch& batch, sample_result& out) {
  TROUPE_CHECK(logits.dims.rows() == int64_t(batch.rows.size()));
  sample_rows(logits.as<float>(), logits.dims.row_size(), batch, out, threads_);
}

}  // namespace troupe::kernels::cpu
