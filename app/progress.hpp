// A progress bar on stderr for loading weights (only when stderr is a terminal).
#pragma once

#include "engine/model/llama_model.hpp"

namespace troupe::app {

/// Draws "loading weights [=====>    ]  45% 3.0 of 6.7 B parameters" on stderr as the model loads,
/// redrawn at each whole percent, ending with a newline; does nothing when stderr is not a terminal
/// (logs then get the one line the command prints when the model is ready).
engine::llama_model::load_progress weights_progress_bar();

}  // namespace troupe::app
