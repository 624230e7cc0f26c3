// cuda_bench --read-bandwidth: what a kernel that only reads can pull from the card's memory, in
// order and in chunks at random places (decode attention reads each key's K and V of a KV head as
// one 256-byte chunk of a page the block table names), beside the copy bandwidth the rooflines use.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "bench/cuda_bench_util.hpp"

namespace troupe::bench {
namespace {

// Each warp reads whole chunks of `lanes_per_chunk` 16-byte words (32 / lanes_per_chunk chunks a
// load), the chunks in the order `order` gives, 8 loads a lane in flight.
template <int lanes_per_chunk>
__global__ void read_chunks(const int4* __restrict__ p, const unsigned* __restrict__ order, size_t chunks,
                            int* sink) {
  constexpr int per_load = 32 / lanes_per_chunk, per_iter = 8 * per_load;
  const int lane = threadIdx.x % 32;
  const size_t warps = size_t(gridDim.x) * blockDim.x / 32;
  int acc = 0;
  for (size_t c = (blockIdx.x * size_t(blockDim.x) + threadIdx.x) / 32 * per_iter; c + per_iter <= chunks;
       c += warps * per_iter) {
    int4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u)
      v[u] = p[size_t(order[c + u * per_load + lane / lanes_per_chunk]) * lanes_per_chunk + lane % lanes_per_chunk];
#pragma unroll
    for (int u = 0; u < 8; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x7fffffff) *sink = acc;  // never: keeps the loads
}

template <class F>
double bytes_per_second(double bytes, F&& f) {
  return bytes / median_call_seconds(7, 2, 1, [&](int) { f(); });
}

template <int lanes_per_chunk>
void read_case(const int4* data, size_t bytes, bool shuffled, int sms, int* sink) {
  const size_t chunks = bytes / (16 * lanes_per_chunk);
  std::vector<unsigned> order(chunks);
  std::iota(order.begin(), order.end(), 0u);
  if (shuffled) std::shuffle(order.begin(), order.end(), std::mt19937(1));
  unsigned* d = nullptr;
  if (cudaMalloc(&d, chunks * sizeof(unsigned)) != cudaSuccess) return;
  cudaMemcpy(d, order.data(), chunks * sizeof(unsigned), cudaMemcpyHostToDevice);
  const double rate = bytes_per_second(double(bytes), [&] { read_chunks<lanes_per_chunk><<<sms * 8, 256>>>(data, d, chunks, sink); });
  std::printf("| read, %d-byte chunks, %s | %.0f GB/s |\n", 16 * lanes_per_chunk, shuffled ? "random order" : "in order",
              rate / 1e9);
  cudaFree(d);
}

}  // namespace

void read_bandwidth_bench() {
  const size_t bytes = size_t{4} << 30;
  void* data = nullptr;
  int* sink = nullptr;
  if (cudaMalloc(&data, bytes) != cudaSuccess || cudaMalloc(&sink, sizeof(int)) != cudaSuccess) {
    std::fprintf(stderr, "cuda_bench: no room for %zu bytes\n", bytes);
    return;
  }
  cudaMemset(data, 1, bytes);
  int sms = 1;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  std::printf("\n| 4 GiB | bandwidth |\n| --- | --- |\n");
  const double copy = bytes_per_second(double(bytes), [&] {
    cudaMemcpyAsync(static_cast<char*>(data) + bytes / 2, data, bytes / 2, cudaMemcpyDeviceToDevice);
  });
  std::printf("| copy, read + write counted | %.0f GB/s |\n", copy / 1e9);
  for (bool shuffled : {false, true}) {
    read_case<16>(static_cast<const int4*>(data), bytes, shuffled, sms, sink);
    read_case<32>(static_cast<const int4*>(data), bytes, shuffled, sms, sink);
  }
  cudaFree(data);
  cudaFree(sink);
}

}  // namespace troupe::bench
