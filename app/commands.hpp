// The troupe program's subcommands; each file app/cmd_*.cpp adds one to the command line.
#pragma once

#include <CLI/CLI.hpp>

namespace troupe::app {

/// `troupe generate`: continue a prompt with a model (app/cmd_generate.cpp).
void add_generate_command(CLI::App& app);
/// `troupe tokenize`: encode text to ids or decode ids to text (app/cmd_tokenize.cpp).
void add_tokenize_command(CLI::App& app);
/// `troupe devices`: list the GPUs this build can use (app/cmd_devices.cpp).
void add_devices_command(CLI::App& app);
/// `troupe serve`: the OpenAI-compatible HTTP server (app/cmd_serve.cpp).
void add_serve_command(CLI::App& app);
/// `troupe bench offline`: the offline reference workload in-process (app/cmd_bench.cpp).
void add_bench_command(CLI::App& app);

}  // namespace troupe::app
