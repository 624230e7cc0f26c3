# Builds bench/cuda_bench (decode-1 and prefill-2k on the GPU against measured ceilings) when the
# CUDA backend is compiled in; a benchmark run by scripts/gpu_cuda.sh, so it is not a test.
if(TROUPE_HAVE_CUDA)
  add_executable(cuda_bench ${CMAKE_SOURCE_DIR}/bench/cuda_bench.cpp ${CMAKE_SOURCE_DIR}/bench/cuda_bench_prefill.cpp
                 ${CMAKE_SOURCE_DIR}/bench/cuda_bench_overlap.cpp
                 ${CMAKE_SOURCE_DIR}/bench/cuda_bench_read.cu)
  target_link_libraries(cuda_bench PRIVATE troupe_engine CUDA::cudart_static CUDA::cublas)
  set_target_properties(cuda_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
endif()
