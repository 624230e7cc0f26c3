// RoPE inverse-frequency tables, following Hugging Face's rope initialisation functions.
#include "engine/model/rope.hpp"

#include <cmath>
#include <numbers>

namespace troupe::engine {

std::vector<float> rope_inv_freq(double theta, int64_t head_dim, const config::rope_scaling& scaling) {
  const int64_t half = head_dim / 2;
  std::vector<float> out(static_cast<size_t>(half));
  const double pi = std::numbers::pi;
  for (int64_t i = 0; i < half; ++i) {
    double freq = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
    switch (scaling.type) {
      case config::rope_scaling_type::none: break;
      case config::rope_scaling_type::linear: freq /= scaling.factor; break;
      case config::rope_scaling_type::llama3: {
        // Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
        double old_len = static_cast<double>(scaling.original_max_position_embeddings);
        double low_freq_wavelen = old_len / scaling.low_freq_factor;
        double high_freq_wavelen = old_len / scaling.high_freq_factor;
        double wavelen = 2.0 * pi / freq;
        if (wavelen > low_freq_wavelen) {
          freq /= scaling.factor;
        } else if (wavelen >= high_freq_wavelen) {
          double smooth = (old_len / wavelen - scaling.low_freq_factor) /
                          (scaling.high_freq_factor - scaling.low_freq_factor);
          freq = (1.0 - smooth) * freq / scaling.factor + smooth * freq;
        }
        break;
      }
    }
    out[static_cast<size_t>(i)] = static_cast<float>(freq);
  }
  return out;
}

std::vector<float> rope_inv_freq(const config::model_config& cfg) {
  return rope_inv_freq(cfg.rope_theta, cfg.head_dim, cfg.rope);
}

}  // namespace troupe::engine
