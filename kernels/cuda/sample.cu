// The CUDA backend's sample op: recipes up in one copy, greedy rows by argmax, the others through
// adjust + sort + draw in chunks of rows, logprobs where asked, and one copy of the results down.
// Buffers (device and pinned host) are kept across steps and only grow.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cuda/cuda_backend_impl.cuh"
#include "kernels/cuda/sample.cuh"

namespace troupe::kernels::cuda {

struct sample_scratch {
  std::shared_ptr<void> upload, results, keys[2], ids[2], sort_temp;
  size_t upload_bytes = 0, results_bytes = 0, work_elements = 0, sort_temp_bytes = 0;
  void* host_up = nullptr;    // pinned
  void* host_down = nullptr;  // pinned
  size_t host_up_bytes = 0, host_down_bytes = 0;
  ~sample_scratch() {
    if (host_up) cudaFreeHost(host_up);
    if (host_down) cudaFreeHost(host_down);
  }
};

namespace {

constexpr size_t align16(size_t n) { return (n + 15) & ~size_t{15}; }
// A chunk of work rows holds at most this many logits (16 bytes each in the sort's buffers).
constexpr int64_t chunk_elements = int64_t{1} << 24;

}  // namespace

void cuda_backend::sample(const tensor& logits, const sampling_batch& batch, sample_result& out) {
  const auto rows = int64_t(batch.rows.size());
  const int64_t vocab = logits.dims.row_size();
  TROUPE_CHECK(logits.dims.rows() == rows);
  out.tokens.assign(size_t(rows), 0);
  out.logprobs.assign(size_t(rows), logprobs_entry{});
  flush();
  if (!ok() || rows == 0) return;
  // Which rows take which path.
  std::vector<int32_t> greedy, work, scored, with_logprobs;
  int64_t sorted = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const row_recipe& rc = batch.rows[size_t(r)];
    TROUPE_CHECK(size_t(rc.first_adjustment) + rc.num_adjustments <= batch.adjustments.size());
    TROUPE_CHECK(rc.logprobs <= max_top_logprobs && rc.score_token < vocab);
    if (rc.logprobs >= 0) with_logprobs.push_back(int32_t(r));
    if (rc.score_token >= 0) continue;
    if (rc.temperature == 0.0f && rc.num_adjustments == 0) greedy.push_back(int32_t(r));
    else if (rc.temperature != 0.0f) work.insert(work.begin() + sorted++, int32_t(r));  // sorted rows first
    else work.push_back(int32_t(r));
  }
  const int64_t chunk_rows = work.empty() ? 0 : std::min<int64_t>(int64_t(work.size()), std::max<int64_t>(1, chunk_elements / vocab));

  // One upload: recipes, adjustments, row lists, sort offsets.
  const size_t recipes_at = 0;
  const size_t adjust_at = recipes_at + align16(batch.rows.size() * sizeof(row_recipe));
  const size_t greedy_at = adjust_at + align16(batch.adjustments.size() * sizeof(logit_adjustment));
  const size_t work_at = greedy_at + align16(greedy.size() * 4);
  const size_t lp_at = work_at + align16(work.size() * 4);
  const size_t offsets_at = lp_at + align16(with_logprobs.size() * 4);
  const size_t up_bytes = offsets_at + align16(size_t(chunk_rows + 1) * 4);
  sample_scratch& s = *sampling_;
  if (s.host_up_bytes < up_bytes) {
    if (s.host_up) cudaFreeHost(s.host_up);
    s.host_up = nullptr;
    s.host_up_bytes = 0;
    if (!TROUPE_CUDA_OK(cudaMallocHost(&s.host_up, up_bytes * 2))) return;
    s.host_up_bytes = up_bytes * 2;
  }
  if (s.upload_bytes < up_bytes) {
    s.upload = device_bytes(up_bytes * 2);
    s.upload_bytes = s.upload ? up_bytes * 2 : 0;
    if (!s.upload) return;
  }
  auto* up = static_cast<std::byte*>(s.host_up);
  std::memcpy(up + recipes_at, batch.rows.data(), batch.rows.size() * sizeof(row_recipe));
  std::memcpy(up + adjust_at, batch.adjustments.data(), batch.adjustments.size() * sizeof(logit_adjustment));
  std::memcpy(up + greedy_at, greedy.data(), greedy.size() * 4);
  std::memcpy(up + work_at, work.data(), work.size() * 4);
  std::memcpy(up + lp_at, with_logprobs.data(), with_logprobs.size() * 4);
  auto* offsets_host = reinterpret_cast<int32_t*>(up + offsets_at);
  for (int64_t j = 0; j <= chunk_rows; ++j) offsets_host[j] = int32_t(j * vocab);
  auto* dev = static_cast<std::byte*>(s.upload.get());
  // Every row greedy without logprobs (decode batches of greedy requests): the argmax reads no recipe,
  // and the step saves a copy up.
  const bool all_greedy = int64_t(greedy.size()) == rows && with_logprobs.empty();
  if (!all_greedy && !TROUPE_CUDA_OK(cudaMemcpyAsync(dev, up, up_bytes, cudaMemcpyHostToDevice, stream()))) return;
  const auto* d_recipes = reinterpret_cast<const row_recipe*>(dev + recipes_at);
  const auto* d_adjust = reinterpret_cast<const logit_adjustment*>(dev + adjust_at);
  const auto* d_greedy = reinterpret_cast<const int32_t*>(dev + greedy_at);
  const auto* d_work = reinterpret_cast<const int32_t*>(dev + work_at);
  const auto* d_lp = reinterpret_cast<const int32_t*>(dev + lp_at);
  const auto* d_offsets = reinterpret_cast<const int32_t*>(dev + offsets_at);

  // Results: tokens of every row, then a logprobs record per row that asks.
  const size_t records_at = align16(size_t(rows) * 4);
  const size_t down_bytes = records_at + with_logprobs.size() * sizeof(device_logprobs);
  if (s.results_bytes < down_bytes) {
    s.results = device_bytes(down_bytes * 2);
    s.results_bytes = s.results ? down_bytes * 2 : 0;
    if (!s.results) return;
  }
  if (s.host_down_bytes < down_bytes) {
    if (s.host_down) cudaFreeHost(s.host_down);
    s.host_down = nullptr;
    s.host_down_bytes = 0;
    if (!TROUPE_CUDA_OK(cudaMallocHost(&s.host_down, down_bytes * 2))) return;
    s.host_down_bytes = down_bytes * 2;
  }
  auto* d_tokens = static_cast<int32_t*>(s.results.get());
  auto* d_records = reinterpret_cast<device_logprobs*>(static_cast<std::byte*>(s.results.get()) + records_at);

  {
    profile_scope timing(*this, "sample (greedy)");
    const bool all = int64_t(greedy.size()) == rows;
    TROUPE_CUDA_OK(argmax_rows(logits.type, logits.data, vocab, vocab, all ? nullptr : d_greedy,
                               all ? nullptr : d_greedy, int64_t(greedy.size()), d_tokens, stream()));
  }
  if (chunk_rows > 0) {
    profile_scope timing(*this, "sample (sorted)");
    const auto elements = size_t(chunk_rows * vocab);
    if (s.work_elements < elements) {
      for (int b = 0; b < 2; ++b) {
        s.keys[b] = device_bytes(elements * 4);
        s.ids[b] = device_bytes(elements * 4);
      }
      s.work_elements = ok() ? elements : 0;
    }
    size_t need = 0;
    float* no_keys[2] = {nullptr, nullptr};
    int32_t* no_ids[2] = {nullptr, nullptr};
    TROUPE_CUDA_OK(sort_work_rows(nullptr, &need, no_keys, no_ids, vocab, chunk_rows, d_offsets, nullptr, stream()));
    if (!s.sort_temp || need > s.sort_temp_bytes) {  // never null: CUB takes null for "how much"
      s.sort_temp = device_bytes(need);
      s.sort_temp_bytes = s.sort_temp ? need : 0;
    }
    if (!ok()) return;
    float* keys[2] = {static_cast<float*>(s.keys[0].get()), static_cast<float*>(s.keys[1].get())};
    int32_t* ids[2] = {static_cast<int32_t*>(s.ids[0].get()), static_cast<int32_t*>(s.ids[1].get())};
    for (int64_t w0 = 0; w0 < int64_t(work.size()); w0 += chunk_rows) {
      const int64_t n = std::min<int64_t>(chunk_rows, int64_t(work.size()) - w0);
      const int64_t n_sorted = std::clamp<int64_t>(sorted - w0, 0, n);
      TROUPE_CUDA_OK(prepare_work_rows(logits.type, logits.data, vocab, d_work + w0, n, d_recipes, d_adjust, keys[0],
                                       ids[0], stream()));
      // Greedy rows with adjustments: the argmax of the adjusted copy (before the sort moves buffers).
      TROUPE_CUDA_OK(argmax_rows(dtype::f32, keys[0] + n_sorted * vocab, vocab, vocab, nullptr, d_work + w0 + n_sorted,
                                 n - n_sorted, d_tokens, stream()));
      if (n_sorted == 0) continue;
      size_t temp_bytes = s.sort_temp_bytes;
      int current = 0;
      TROUPE_CUDA_OK(sort_work_rows(s.sort_temp.get(), &temp_bytes, keys, ids, vocab, n_sorted, d_offsets, &current,
                                    stream()));
      TROUPE_CUDA_OK(draw_rows(keys[current], ids[current], vocab, d_work + w0, n_sorted, d_recipes, d_tokens,
                               stream()));
    }
  }
  if (!with_logprobs.empty()) {
    profile_scope timing(*this, "sample (logprobs)");
    TROUPE_CUDA_OK(logprobs_rows(logits.type, logits.data, vocab, d_lp, int64_t(with_logprobs.size()), d_recipes,
                                 d_tokens, d_records, stream()));
  }
  TROUPE_CUDA_OK(cudaMemcpyAsync(s.host_down, s.results.get(), down_bytes, cudaMemcpyDeviceToHost, stream()));
  TROUPE_CUDA_OK(cudaStreamSynchronize(stream()));
  if (!ok()) return;
  std::memcpy(out.tokens.data(), s.host_down, size_t(rows) * 4);
  const auto* records = reinterpret_cast<const device_logprobs*>(static_cast<std::byte*>(s.host_down) + records_at);
  for (size_t k = 0; k < with_logprobs.size(); ++k) {
    const auto r = size_t(with_logprobs[k]);
    const device_logprobs& d = records[k];
    logprobs_entry& e = out.logprobs[r];
    e.chosen = {d.token, d.logprob};
    e.rank = d.rank;
    const int32_t n = std::min<int64_t>(batch.rows[r].logprobs, vocab);
    for (int32_t j = 0; j < n; ++j) e.top.push_back({d.top_tokens[j], d.top_logprobs[j]});
  }
  for (int64_t r = 0; r < rows; ++r)
    if (batch.rows[size_t(r)].score_token >= 0) out.tokens[size_t(r)] = batch.rows[size_t(r)].score_token;
}

}  // namespace troupe::kernels::cuda

namespace troupe::kernels::cuda {

std::shared_ptr<sample_scratch> cuda_backend::make_sample_scratch() { return std::make_shared<sample_scratch>(); }

}  // namespace troupe::kernels::cuda
