# Builds bench/scheduler_bench (scheduler overhead per step, engine::llm CPU throughput); a benchmark, not run as a test.
add_executable(scheduler_bench ${CMAKE_SOURCE_DIR}/bench/scheduler_bench.cpp)
target_link_libraries(scheduler_bench PRIVATE troupe_engine)
target_compile_definitions(scheduler_bench PRIVATE TROUPE_DEFAULT_MODEL="${TROUPE_DEFAULT_MODEL}")
set_target_properties(scheduler_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
