// The CPU backend's elementwise ops, norms, embedding, gathers and matrix products against scalar loops.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/backend.hpp"

using namespace troupe::kernels;

namespace {

std::vector<float> random_values(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

tensor upload(backend& be, const std::vector<float>& values, shape dims) {
  tensor t = be.alloc(dims);
  be.copy_to_device(values, t);
  return t;
}

std::vector<float> download(backend& be, const tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  be.copy_to_host(t, v);
  return v;
}

void require_close(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(std::abs(double(got[i]) - want[i]) <= tol * (1.0 + std::abs(want[i])));
  }
}

std::vector<double> naive_rms_norm(const std::vector<float>& x, const std::vector<float>& w, double eps) {
  size_t n = w.size(), rows = x.size() / n;
  std::vector<double> out(x.size());
  for (size_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (size_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    double inv = 1.0 / std::sqrt(ss / double(n) + eps);
    for (size_t i = 0; i < n; ++i) out[r * n + i] = double(x[r * n + i]) * inv * w[i];
  }
  return out;
}

}  // namespace

// Shapes cover the three paths: a plain loop (tiny), matrix-vector (one row) and OpenBLAS sgemm.
TEST_CASE("matmul computes x times the transposed weight, with and without bias") {
  auto be = make_cpu_backend(2);
  std::mt19937 rng(1);
  for (int64_t m : {1, 2, 7, 33}) {
    for (auto [k, n] : {std::pair<int64_t, int64_t>{8, 5}, {64, 17}, {130, 64}, {300, 260}}) {
      auto xv = random_values(size_t(m * k), rng), wv = random_values(size_t(n * k), rng);
      auto bv = random_values(size_t(n), rng);
      tensor x = upload(*be, xv, {m, k}), w = be->upload_weight(dtype::f32, wv.data(), {n, k});
      tensor b = upload(*be, bv, {n}), out = be->alloc({m, n});
      for (bool with_bias : {false, true}) {
        be->matmul(x, w, with_bias ? &b : nullptr, out);
        std::vector<double> want(size_t(m * n));
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double s = with_bias ? bv[size_t(j)] : 0.0;
            for (int64_t c = 0; c < k; ++c) s += double(xv[size_t(i * k + c)]) * wv[size_t(j * k + c)];
            want[size_t(i * n + j)] = s;
          }
        INFO("m " << m << " k " << k << " n " << n << " bias " << with_bias);
        require_close(download(*be, out), want, 1e-5);
      }
    }
  }
}

TEST_CASE("matmul with a small weight gives every row bitwise the same result whatever the row count") {
  auto be = make_cpu_backend(2);
  std::mt19937 rng(5);
  const int64_t m = 11, k = 96, n = 300;  // 28800 weight elements: the plain-loop path
  auto xv = random_values(size_t(m * k), rng), wv = random_values(size_t(n * k), rng);
  tensor w = be->upload_weight(dtype::f32, wv.data(), {n, k}), out = be->alloc({m, n});
  be->matmul(upload(*be, xv, {m, k}), w, nullptr, out);
  auto all = download(*be, out);
  for (int64_t r = 0; r < m; ++r) {
    std::vector<float> row(xv.begin() + r * k, xv.begin() + (r + 1) * k);
    tensor one = be->alloc({1, n});
    be->matmul(upload(*be, row, {1, k}), w, nullptr, one);
    REQUIRE(download(*be, one) == std::vector<float>(all.begin() + r * n, all.begin() + (r + 1) * n));
  }
}

TEST_CASE("upload_weight uses aligned float32 in place and converts half types") {
  auto be = make_cpu_backend(1);
  std::vector<float> f32 = {1.5f, -2.0f, 0.25f, 3.0f};
  tensor t = be->upload_weight(dtype::f32, f32.data(), {2, 2});
  REQUIRE(t.data == f32.data());
  std::vector<uint16_t> bf = {float_to_bf16(1.5f), float_to_bf16(-2.0f), float_to_bf16(0.25f),
                              float_to_bf16(3.0f)};
  tensor tb = be->upload_weight(dtype::bf16, bf.data(), {4});
  REQUIRE(tb.type == dtype::f32);
  REQUIRE(download(*be, tb) == f32);
  std::vector<uint16_t> h = {0x3e00, 0xc000, 0x3400, 0x4200};  // 1.5, -2, 0.25, 3 in IEEE half
  REQUIRE(download(*be, be->upload_weight(dtype::f16, h.data(), {4})) == f32);
  // Misaligned float32 data is copied rather than used in place.
  std::vector<std::byte> raw(4 * sizeof(float) + 1);
  std::memcpy(raw.data() + 1, f32.data(), 4 * sizeof(float));
  tensor tm = be->upload_weight(dtype::f32, raw.data() + 1, {4});
  REQUIRE(tm.data != raw.data() + 1);
  REQUIRE(download(*be, tm) == f32);
}

TEST_CASE("rms_norm and add_rms_norm match a double-precision loop") {
  auto be = make_cpu_backend(1);
  std::mt19937 rng(2);
  for (int64_t n : {1, 7, 64, 257}) {
    const int64_t rows = 5;
    auto xv = random_values(size_t(rows * n), rng, -3, 3), rv = random_values(size_t(rows * n), rng);
    auto wv = random_values(size_t(n), rng, 0.5f, 1.5f);
    tensor x = upload(*be, xv, {rows, n}), w = upload(*be, wv, {n}), out = be->alloc({rows, n});
    be->rms_norm(x, w, 1e-5f, out);
    require_close(download(*be, out), naive_rms_norm(xv, wv, 1e-5), 1e-5);

    tensor res = upload(*be, rv, {rows, n});
    be->add_rms_norm(x, res, w, 1e-6f, out);
    std::vector<float> sum(xv.size());
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = xv[i] + rv[i];
    REQUIRE(download(*be, res) == sum);
    require_close(download(*be, out), naive_rms_norm(sum, wv, 1e-6), 1e-5);
  }
}

TEST_CASE("embedding, gather_rows, silu_and_mul and add") {
  auto be = make_cpu_backend(1);
  std::mt19937 rng(3);
  const int64_t vocab = 11, hidden = 13;
  auto table_v = random_values(size_t(vocab * hidden), rng);
  tensor table = be->upload_weight(dtype::f32, table_v.data(), {vocab, hidden});
  std::vector<int32_t> ids = {10, 0, 3, 3, 7};
  tensor emb = be->alloc({5, hidden});
  be->embedding(table, be->upload_indices(ids, {5}), emb);
  auto got = download(*be, emb);
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t i = 0; i < hidden; ++i)
      REQUIRE(got[t * hidden + size_t(i)] == table_v[size_t(ids[t] * hidden + i)]);

  std::vector<int32_t> rows = {4, 1};
  tensor picked = be->alloc({2, hidden});
  be->gather_rows(emb, be->upload_indices(rows, {2}), picked);
  auto gp = download(*be, picked);
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t i = 0; i < hidden; ++i)
      REQUIRE(gp[r * hidden + size_t(i)] == got[size_t(rows[r]) * hidden + size_t(i)]);

  auto gv = random_values(31, rng, -6, 6), uv = random_values(31, rng, -2, 2);
  tensor g = upload(*be, gv, {31}), u = upload(*be, uv, {31});
  // silu_and_mul over rows of [gate | up]: three rows of 2 x 31, row r holding gate * (r + 1).
  std::vector<float> gate_up;
  for (int r = 0; r < 3; ++r) {
    for (float x : gv) gate_up.push_back(x * float(r + 1));
    gate_up.insert(gate_up.end(), uv.begin(), uv.end());
  }
  tensor gu = upload(*be, gate_up, {3, 62}), o = be->alloc({3, 31});
  be->silu_and_mul(gu, o);
  std::vector<double> want;
  for (int r = 0; r < 3; ++r)
    for (size_t i = 0; i < 31; ++i) {
      const double x = double(gv[i]) * (r + 1);
      want.push_back(x / (1.0 + std::exp(-x)) * uv[i]);
    }
  require_close(download(*be, o), want, 1e-6);

  be->add(g, u, g);  // in place
  auto sum = download(*be, g);
  for (size_t i = 0; i < 31; ++i) REQUIRE(sum[i] == gv[i] + uv[i]);
}

TEST_CASE("tensor rows share memory with their parent") {
  auto be = make_cpu_backend(1);
  tensor t = be->alloc({4, 3, 2});
  tensor r = t.rows(1, 2);
  REQUIRE(r.dims == shape{2, 3, 2});
  REQUIRE(r.as<float>() == t.as<float>() + 6);
  REQUIRE(t.rows(4, 0).numel() == 0);
}
