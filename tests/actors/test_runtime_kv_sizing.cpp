// On a backend that reports its memory (a GPU), the runtime's KV cache is what the card's free
// memory allows (engine::size_kv_cache, as engine::llm sizes it), not the CPU default; too little
// memory fails the start with the numbers.
#include "runtime_helpers.hpp"

using namespace troupe;
using namespace troupe::test;

namespace {

std::shared_ptr<failure_plan> gpu_like(size_t free_bytes, size_t total_bytes) {
  auto plan = std::make_shared<failure_plan>();
  plan->failing_instances = 0;
  plan->free_bytes = free_bytes;
  plan->total_bytes = total_bytes;
  return plan;
}

}  // namespace

TEST_CASE("the runtime sizes the KV cache from the memory the backend reports", "[actors]") {
  engine::llm_options e;
  e.max_num_seqs = 4096;              // so that memory, not the sequence cap, bounds the cache
  e.gpu_memory_utilization = 0.25;
  const size_t total = size_t{4} << 30, free = total - (size_t{100} << 20);  // 100 MiB "in use"
  const auto plan = gpu_like(free, total);

  // What engine::llm would take on the same backend, and what the CPU default would be.
  failing_backend be(plan);
  auto model = engine::llama_model::load(TROUPE_DEFAULT_MODEL, be);
  REQUIRE(model.has_value());
  auto sized = engine::size_kv_cache(**model, e);
  REQUIRE(sized.has_value());
  auto cpu_default = engine::make_scheduler_options((*model)->config(), e);
  REQUIRE(cpu_default.has_value());
  INFO("sized from memory " << sized->num_blocks << " blocks, CPU default " << cpu_default->num_blocks);
  REQUIRE(sized->num_blocks != cpu_default->num_blocks);

  auto rt = start(with_plan(options_for(e), plan));
  CHECK(rt->metrics().kv_blocks_total == sized->num_blocks);
  CHECK(rt->max_model_len() == std::min<int64_t>(sized->max_model_len, int64_t{sized->num_blocks} * sized->block_size + 1));
  rt->drain(std::chrono::seconds(5));
}

TEST_CASE("too little memory for the KV cache fails the start with the numbers", "[actors]") {
  engine::llm_options e;
  const size_t total = size_t{1} << 30;
  auto rt = runtime::start(with_plan(options_for(e), gpu_like(size_t{1} << 20, total)));  // 1 MiB free
  REQUIRE_FALSE(rt.has_value());
  CHECK_THAT(rt.error().message, Catch::Contains("not enough GPU memory for the KV cache"));
  CHECK_THAT(rt.error().message, Catch::Contains("gpu-memory-utilization"));
}
