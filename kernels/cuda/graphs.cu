// The CUDA backend's graphs (stream capture and replay), index writes into existing buffers, and
// its memory figures.
#include <algorithm>

#include "kernels/cuda/cuda_backend_impl.cuh"

namespace troupe::kernels::cuda {

void cuda_backend::write_indices(std::span<const int32_t> host, index_tensor& dst) {
  TROUPE_CHECK(static_cast<int64_t>(host.size()) == dst.numel());
  flush();
  if (!ok() || host.empty()) return;
  // From pageable memory the copy is staged before the call returns: the host may reuse it at once.
  TROUPE_CUDA_OK(cudaMemcpyAsync(dst.data, host.data(), host.size_bytes(), cudaMemcpyHostToDevice, stream()));
}

bool cuda_backend::memory_info(size_t& free_bytes, size_t& total_bytes) {
  synchronize();
  size_t f = 0, t = 0;
  if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  free_bytes = f;
  total_bytes = t;
  return true;
}

bool cuda_backend::begin_capture() {
  flush();
  if (!ok() || capturing_) return false;
  // Ops are recorded, not run: no per-op timing inside a graph (replay times the whole graph).
  profiling_before_capture_ = profiling_;
  profiling_ = false;
  if (!TROUPE_CUDA_OK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal))) {
    profiling_ = profiling_before_capture_;
    return false;
  }
  capturing_ = true;
  return true;
}

int cuda_backend::end_capture() {
  if (!capturing_) return -1;
  flush();
  capturing_ = false;
  profiling_ = profiling_before_capture_;
  cudaGraph_t graph = nullptr;
  const bool captured = TROUPE_CUDA_OK(cudaStreamEndCapture(stream(), &graph));
  if (!captured || graph == nullptr) return -1;
  cudaGraphExec_t exec = nullptr;
  const bool made = TROUPE_CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  cudaGraphDestroy(graph);
  if (!made) return -1;
  graphs_.push_back(exec);
  return static_cast<int>(graphs_.size()) - 1;
}

void cuda_backend::replay(int graph) {
  TROUPE_CHECK(graph >= 0 && graph < static_cast<int>(graphs_.size()) && graphs_[static_cast<size_t>(graph)] != nullptr);
  flush();
  if (!ok()) return;
  profile_scope timing(*this, "step (CUDA graph)");
  TROUPE_CUDA_OK(cudaGraphLaunch(graphs_[static_cast<size_t>(graph)], stream()));
}

void cuda_backend::release_graph(int graph) {
  if (graph < 0 || graph >= static_cast<int>(graphs_.size())) return;
  cudaGraphExec_t& exec = graphs_[static_cast<size_t>(graph)];
  if (exec == nullptr) return;
  cudaStreamSynchronize(stream());  // it may still be running
  cudaGraphExecDestroy(exec);
  exec = nullptr;
}

void cuda_backend::release_graphs() {
  for (size_t i = 0; i < graphs_.size(); ++i) release_graph(static_cast<int>(i));
}

}  // namespace troupe::kernels::cuda
