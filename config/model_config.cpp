// TEMPORARY: load_model_config is being written (config/model_config.cpp).
#include "config/model_config.hpp"

namespace troupe::config {}
