// backend::sample's default: the logits come to the host and the CPU reference samples them; the
// two-half sampling defaults on top of it.
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

int backend::sample_begin(const tensor& logits, const sampling_batch& batch) {
  const int ticket = next_ticket_;
  next_ticket_ ^= 1;
  sample(logits, batch, begun_[ticket]);
  return ticket;
}

void backend::sample_end(int ticket, sample_result& out) {
  TROUPE_CHECK(ticket == 0 || ticket == 1);
  out = std::move(begun_[ticket]);
}

void backend::feed_sampled(int ticket, std::span<const int32_t> rows, index_tensor& ids, std::span<const int32_t> at) {
  TROUPE_CHECK((ticket == 0 || ticket == 1) && rows.size() == at.size());
  const auto& tokens = begun_[ticket].tokens;
  for (size_t i = 0; i < rows.size(); ++i) {
    TROUPE_CHECK(size_t(rows[i]) < tokens.size() && at[i] >= 0 && at[i] < ids.numel());
    ids.data[at[i]] = tokens[size_t(rows[i])];
  }
}

}  // namespace troupe::kernels
