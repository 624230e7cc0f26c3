// TEMPORARY placeholder while the generate command is written (replaced before the issue is done).
#include "app/commands.hpp"

namespace troupe::app {

void add_generate_command(CLI::App& app) { app.add_subcommand("generate", "(being written)"); }

}  // namespace troupe::app
