// `troupe devices`: prints the GPUs found at run time (none is fine: the CPU backend serves then).
#include <cstdio>
#include <string>

#include "app/commands.hpp"
#include "kernels/device.hpp"

namespace troupe::app {

void add_devices_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "List the GPUs this build can use");
  cmd->callback([] {
    std::string why;
    auto gpus = kernels::list_gpus(&why);
    std::printf("CUDA backend compiled: %s\n", kernels::cuda_compiled() ? "yes" : "no");
    if (gpus.empty()) std::printf("no usable GPU (%s): the CPU backend will be used\n", why.c_str());
    for (const auto& g : gpus)
      std::printf("gpu %d: %s, sm_%d%d, %.1f GiB total, %.1f GiB free\n", g.index, g.name.c_str(),
                  g.sm_major, g.sm_minor, g.total_memory / 1073741824.0, g.free_memory / 1073741824.0);
  });
}

}  // namespace troupe::app
