// The weights progress bar.
#include "app/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

namespace troupe::app {

engine::llama_model::load_progress weights_progress_bar() {
  if (isatty(STDERR_FILENO) == 0) return {};
  auto last = std::make_shared<int>(-1);
  return [last](int64_t done, int64_t total) {
    const int percent = total > 0 ? int(done * 100 / total) : 100;
    if (percent == *last) return;
    *last = percent;
    constexpr int width = 30;
    const int filled = percent * width / 100;
    std::string bar(size_t(filled), '=');
    if (filled < width) bar += '>' + std::string(size_t(width - filled - 1), ' ');
    std::fprintf(stderr, "\rloading weights [%s] %3d%% %.1f of %.1f B parameters", bar.c_str(), percent,
                 double(done) / 1e9, double(total) / 1e9);
    if (done >= total) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
}

}  // namespace troupe::app
