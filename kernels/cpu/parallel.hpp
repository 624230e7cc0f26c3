// A minimal parallel-for for the CPU backend: splits a range over a few short-lived threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace troupe::kernels::cpu {

/// Calls fn(begin, end) on disjoint chunks covering [0, n). Runs inline when `threads` <= 1 or the
/// work (n * cost_per_item, in rough flops) is too small to pay for starting threads.
template <class Fn>
void parallel_for(int64_t n, int threads, int64_t cost_per_item, Fn&& fn) {
  constexpr int64_t min_parallel_work = 1 << 18;
  int64_t chunks = std::min<int64_t>(threads, n);
  if (chunks <= 1 || n * cost_per_item < min_parallel_work) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(chunks - 1));
  int64_t step = (n + chunks - 1) / chunks;
  for (int64_t c = 1; c < chunks; ++c) {
    int64_t begin = c * step, end = std::min(n, begin + step);
    if (begin < end) workers.emplace_back([&fn, begin, end] { fn(begin, end); });
  }
  fn(int64_t{0}, std::min(n, step));
  for (auto& w : workers) w.join();
}

}  // namespace troupe::kernels::cpu
