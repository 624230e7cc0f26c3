// TEMPORARY placeholder while the tokenize command is written (replaced before the issue is done).
#include "app/commands.hpp"

namespace troupe::app {

void add_tokenize_command(CLI::App& app) { app.add_subcommand("tokenize", "(being written)"); }

}  // namespace troupe::app
