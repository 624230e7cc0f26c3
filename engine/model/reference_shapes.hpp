// The Llama shapes of the reference workloads (PERFORMANCE.md) for dummy-weight benchmarks, and
// parameter counts.
#pragma once

#include <cstdint>
#include <string_view>

#include "config/error.hpp"
#include "config/model_config.hpp"

namespace troupe::engine {

/// "llama2-7b" (32 layers, hidden 4096, MHA, vocab 32000) or "llama3-8b" (GQA 32/8, vocab 128256,
/// rope_theta 500000); untied embeddings, eos id 2. Anything else is an error naming it.
expected<config::model_config> reference_shape(std::string_view name);

/// Parameters of one decoder layer (attention, MLP, two norms).
int64_t layer_parameter_count(const config::model_config& c);

/// Parameters of the whole model, counting embedding and lm_head separately (untied).
int64_t parameter_count(const config::model_config& c);

}  // namespace troupe::engine
