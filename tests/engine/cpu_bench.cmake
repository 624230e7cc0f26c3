# Builds bench/cpu_forward_bench (CPU prefill/decode tokens/s); a benchmark, so it is not run as a test.
add_executable(cpu_forward_bench ${CMAKE_SOURCE_DIR}/bench/cpu_forward_bench.cpp)
target_link_libraries(cpu_forward_bench PRIVATE troupe_engine)
target_compile_definitions(cpu_forward_bench PRIVATE TROUPE_DEFAULT_MODEL="${TROUPE_DEFAULT_MODEL}")
set_target_properties(cpu_forward_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
