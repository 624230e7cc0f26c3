// The troupe program: parses the command line and runs one subcommand.
#include <cstdio>

#include "app/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"troupe: serve Llama-family language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "troupe 0.1.0");
  troupe::app::add_generate_command(app);
  troupe::app::add_tokenize_command(app);
  troupe::app::add_devices_command(app);
  troupe::app::add_serve_command(app);
  troupe::app::add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
