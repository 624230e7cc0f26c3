// Picks a backend by name, falling back to the CPU under "auto" when no GPU is usable.
#include "kernels/backend_factory.hpp"

#include <charconv>

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/device.hpp"

namespace troupe::kernels {

expected<std::unique_ptr<backend>> make_backend(std::string_view device, dtype compute, int cpu_threads,
                                                std::string* note) {
  auto say = [&](std::string line) {
    if (note) *note = std::move(line);
  };
  if (device == "cpu") {
    say("device: cpu (float32)");
    return make_cpu_backend(cpu_threads);
  }
  const bool automatic = device == "auto";
  int index = 0;
  if (!automatic) {
    if (device.substr(0, 4) != "cuda")
      return make_error("--device: expected cpu, cuda, cuda:N or auto, got '", device, "'");
    if (device.size() > 4) {
      std::string_view digits = device.substr(device[4] == ':' ? 5 : 4);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
      if (device[4] != ':' || digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
          index < 0)
        return make_error("--device: expected cuda:N with a GPU index N, got '", device, "'");
    }
  }
  std::string why;
  std::unique_ptr<backend> gpu;
  if (!cuda_compiled()) {
    why = "this build has no CUDA backend";
  } else if (auto gpus = list_gpus(&why); gpus.empty()) {
    if (why.empty()) why = "no CUDA GPU found";
  } else {
    gpu = make_cuda_backend(index, compute, &why);
  }
  if (gpu) {
    say(std::string("device: ") + std::string(gpu->name()) + " (" + std::string(to_string(compute)) + ")");
    return gpu;
  }
  if (!automatic) return make_error("--device ", device, ": the CUDA backend cannot be used: ", why);
  say("device: cpu (float32); no usable GPU: " + why);
  return make_cpu_backend(cpu_threads);
}

expected<dtype> parse_compute_dtype(std::string_view flag, std::string_view torch_dtype) {
  if (flag == "bfloat16" || flag == "bf16") return dtype::bf16;
  if (flag == "float16" || flag == "fp16" || flag == "half") return dtype::f16;
  if (flag == "auto") return torch_dtype == "float16" ? dtype::f16 : dtype::bf16;
  return make_error("--dtype: expected auto, bfloat16 or float16, got '", flag, "'");
}

}  // namespace troupe::kernels
