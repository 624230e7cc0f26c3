// backend::sample's default: the logits come to the host and the CPU reference samples them.
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/cpu/sampling_reference.hpp"

namespace troupe::kernels {

void backend::sample(const tensor& logits, const sampling_batch& batch, sample_result& out) {
  TROUPE_CHECK(logits.dims.rows() == int64_t(batch.rows.size()));
  std::vector<float> host(size_t(logits.numel()));
  if (!host.empty()) copy_to_host(logits, host);
  cpu::sample_rows(host.data(), logits.dims.row_size(), batch, out, 1);
}

}  // namespace troupe::kernels
