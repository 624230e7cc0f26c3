// Picks a backend by name (--device cpu|cuda|auto) and a compute type (--dtype auto|bfloat16|float16).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "config/error.hpp"
#include "kernels/backend.hpp"

namespace troupe::kernels {

/// "cpu": the float32 CPU backend; "cuda" or "cuda:N": the CUDA backend on GPU 0 or N, an error
/// when it cannot be used; "auto": GPU 0 when it is usable, otherwise the CPU. `compute` is the
/// CUDA backend's compute type (the CPU backend always computes in float32); `cpu_threads` 0 uses
/// every core. *note (optional) receives one line saying what was chosen and, for auto, why.
expected<std::unique_ptr<backend>> make_backend(std::string_view device, dtype compute, int cpu_threads = 0,
                                                std::string* note = nullptr);

/// The CUDA compute type from a --dtype value: "bfloat16"/"bf16", "float16"/"fp16"/"half", or
/// "auto", which takes the model's torch_dtype (config.json) when it is float16 and bf16 otherwise.
expected<dtype> parse_compute_dtype(std::string_view flag, std::string_view torch_dtype);

}  // namespace troupe::kernels
