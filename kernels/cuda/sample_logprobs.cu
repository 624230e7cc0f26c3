// Logprobs of the raw logits (as the CPU reference): one block per row for log-sum-exp in double,
// the chosen token's logprob and rank, and the top n (one block-wide pass per entry, n <= 20).
#include <cub/block/block_reduce.cuh>

#include <climits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sample.cuh"

namespace troupe::kernels::cuda {
namespace {

constexpr int lp_threads = 512;

struct best {  // a candidate in the order "larger value, then lower id"
  float v;
  int32_t i;
};

struct better_of {
  __device__ __forceinline__ best operator()(const best& a, const best& b) const {
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
  }
};

template <class T>
__global__ void __launch_bounds__(lp_threads)
logprobs_kernel(const T* __restrict__ logits, int64_t vocab, const int32_t* __restrict__ rows,
                const row_recipe* __restrict__ recipes, const int32_t* __restrict__ tokens,
                device_logprobs* __restrict__ out) {
  using max_t = cub::BlockReduce<float, lp_threads>;
  using sum_t = cub::BlockReduce<double, lp_threads>;
  using count_t = cub::BlockReduce<long long, lp_threads>;
  using best_t = cub::BlockReduce<best, lp_threads>;
  __shared__ union {
    typename max_t::TempStorage max;
    typename sum_t::TempStorage sum;
    typename count_t::TempStorage count;
    typename best_t::TempStorage best;
  } tmp;
  __shared__ float shared_max;
  __shared__ double shared_log_z;
  __shared__ best shared_best;
  const int32_t row = rows[blockIdx.x];
  const row_recipe& r = recipes[row];
  const T* x = logits + int64_t{row} * vocab;
  const int32_t token = r.score_token >= 0 ? r.score_token : tokens[row];
  device_logprobs& o = out[blockIdx.x];

  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += lp_threads) m = fmaxf(m, to_f(x[i]));
  m = max_t(tmp.max).Reduce(m, [](float a, float b) { return fmaxf(a, b); });
  if (threadIdx.x == 0) shared_max = m;
  __syncthreads();
  m = shared_max;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += lp_threads) s += exp(__dsub_rn(double(to_f(x[i])), double(m)));
  s = sum_t(tmp.sum).Sum(s);
  if (threadIdx.x == 0) shared_log_z = __dadd_rn(double(m), log(s));
  __syncthreads();
  const double log_z = shared_log_z;
  const float xt = to_f(x[token]);
  long long above = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += lp_threads) {
    const float v = to_f(x[i]);
    above += (v > xt || (v == xt && i < token)) ? 1 : 0;
  }
  above = count_t(tmp.count).Sum(above);
  if (threadIdx.x == 0) {
    o.token = token;
    o.logprob = float(__dsub_rn(double(xt), log_z));
    o.rank = above + 1;
  }
  // The top n, one pass each: the best candidate after the previous one in the order.
  best prev{INFINITY, -1};
  const int32_t n = r.logprobs < vocab ? r.logprobs : int32_t(vocab);
  for (int32_t k = 0; k < n && k < max_top_logprobs; ++k) {
    best b{-INFINITY, INT_MAX};
    for (int64_t i = threadIdx.x; i < vocab; i += lp_threads) {
      const float v = to_f(x[i]);
      const bool after = v < prev.v || (v == prev.v && int32_t(i) > prev.i);
      if (after && (v > b.v || (v == b.v && int32_t(i) < b.i))) b = {v, int32_t(i)};
    }
    __syncthreads();  // tmp is reused
    b = best_t(tmp.best).Reduce(b, better_of{});
    if (threadIdx.x == 0) {
      shared_best = b;
      o.top_tokens[k] = b.i;
      o.top_logprobs[k] = float(__dsub_rn(double(b.v), log_z));
    }
    __syncthreads();
    prev = shared_best;
  }
}

}  // namespace

cudaError_t logprobs_rows(dtype type, const void* logits, int64_t vocab, const int32_t* rows, int64_t count,
                          const row_recipe* recipes, const int32_t* tokens, device_logprobs* out,
                          cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    logprobs_kernel<T><<<static_cast<unsigned>(count), lp_threads, 0, stream>>>(static_cast<const T*>(logits), vocab,
                                                                                 rows, recipes, tokens, out);
  });
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
