// RoPE inverse-frequency tables: plain, linear scaling and Llama 3 scaling all reduce to a table.
#pragma once

#include <vector>

#include "config/model_config.hpp"

namespace troupe::engine {

/// The head_dim / 2 inverse frequencies base^(-2i / head_dim), rescaled as the config's
/// rope_scaling says (linear: divided by factor; llama3: Hugging Face's
/// _compute_llama3_parameters). Computed in double, returned as float.
std::vector<float> rope_inv_freq(const config::model_config& cfg);

/// The same for explicit values (tests and tools).
std::vector<float> rope_inv_freq(double theta, int64_t head_dim, const config::rope_scaling& scaling);

}  // namespace troupe::engine
