// The CUDA backend's sample op: recipes up in one copy, greedy rows by argmax, the others through
// adjust + sort + draw in chunks of rows, logprobs where asked, and one copy of the results down.
// It runs in two halves (sample_begin / sample_end) over two tickets, each with its own upload and
// result buffers (device and pinned host) and an event after its copy down, so one step's sampling
// can still be in flight while the next step starts. Buffers are kept across steps and only grow.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cuda/cuda_backend_impl.cuh"
#include "kernels/cuda/sample.cuh"

namespace troupe::kernels::cuda {

// What one ticket owns: its upload and results, and what sample_end needs to unpack them.
struct sample_ticket {
  std::shared_ptr<void> upload, results;
  size_t upload_bytes = 0, results_bytes = 0;
  void* host_up = nullptr;    // pinned
  void* host_down = nullptr;  // pinned
  size_t host_up_bytes = 0, host_down_bytes = 0;
  cudaEvent_t done = nullptr;  // recorded after the copy down
  bool pending = false;        // begun, results not yet taken
  int64_t rows = 0;
  size_t records_at = 0;
  std::vector<int32_t> with_logprobs, logprobs_wanted, score_tokens;
  ~sample_ticket() {
    if (host_up) cudaFreeHost(host_up);
    if (host_down) cudaFreeHost(host_down);
    if (done) cudaEventDestroy(done);
  }
};

struct sample_scratch {
  sample_ticket tickets[2];
  int next = 0;
  // Work buffers of the sorted path: used by one ticket's kernels at a time (the stream orders them).
  std::shared_ptr<void> keys[2], ids[2], sort_temp;
  size_t work_elements = 0, sort_temp_bytes = 0;
};

namespace {

constexpr size_t align16(size_t n) { return (n + 15) & ~size_t{15}; }
// A chunk of work rows holds at most this many logits (16 bytes each in the sort's buffers).
constexpr int64_t chunk_elements = int64_t{1} << 24;

}  // namespace

void cuda_backend::sample(const tensor& logits, const sampling_batch& batch, sample_result& out) {
  sample_end(sample_begin(logits, batch), out);
}

int cuda_backend::sample_begin(const tensor& logits, const sampling_batch& batch) {
  const auto rows = int64_t(batch.rows.size());
  const int64_t vocab = logits.dims.row_size();
  TROUPE_CHECK(logits.dims.rows() == rows);
  sample_scratch& scratch = *sampling_;
  const int ticket = scratch.next;
  scratch.next ^= 1;
  sample_ticket& s = scratch.tickets[ticket];
  TROUPE_CHECK(!s.pending);  // at most two open: the one begun before this must have ended
  s.pending = true;
  s.rows = rows;
  s.with_logprobs.clear();
  s.logprobs_wanted.clear();
  s.score_tokens.clear();
  for (const row_recipe& rc : batch.rows) s.score_tokens.push_back(rc.score_token);
  flush();
  if (!ok() || rows == 0) return ticket;
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
  if (s.host_up_bytes < up_bytes) {
    if (s.host_up) cudaFreeHost(s.host_up);
    s.host_up = nullptr;
    s.host_up_bytes = 0;
    if (!TROUPE_CUDA_OK(cudaMallocHost(&s.host_up, up_bytes * 2))) return ticket;
    s.host_up_bytes = up_bytes * 2;
  }
  if (s.upload_bytes < up_bytes) {
    s.upload = device_bytes(up_bytes * 2);
    s.upload_bytes = s.upload ? up_bytes * 2 : 0;
    if (!s.upload) return ticket;
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
  if (!all_greedy && !TROUPE_CUDA_OK(cudaMemcpyAsync(dev, up, up_bytes, cudaMemcpyHostToDevice, stream()))) return ticket;
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
    if (!s.results) return ticket;
  }
  if (s.host_down_bytes < down_bytes) {
    if (s.host_down) cudaFreeHost(s.host_down);
    s.host_down = nullptr;
    s.host_down_bytes = 0;
    if (!TROUPE_CUDA_OK(cudaMallocHost(&s.host_down, down_bytes * 2))) return ticket;
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
    if (scratch.work_elements < elements) {
      for (int b = 0; b < 2; ++b) {
        scratch.keys[b] = device_bytes(elements * 4);
        scratch.ids[b] = device_bytes(elements * 4);
      }
      scratch.work_elements = ok() ? elements : 0;
    }
    size_t need = 0;
    float* no_keys[2] = {nullptr, nullptr};
    int32_t* no_ids[2] = {nullptr, nullptr};
    TROUPE_CUDA_OK(sort_work_rows(nullptr, &need, no_keys, no_ids, vocab, chunk_rows, d_offsets, nullptr, stream()));
    if (!scratch.sort_temp || need > scratch.sort_temp_bytes) {  // never null: CUB takes null for "how much"
      scratch.sort_temp = device_bytes(need);
      scratch.sort_temp_bytes = scratch.sort_temp ? need : 0;
    }
    if (!ok()) return ticket;
    float* keys[2] = {static_cast<float*>(scratch.keys[0].get()), static_cast<float*>(scratch.keys[1].get())};
    int32_t* ids[2] = {static_cast<int32_t*>(scratch.ids[0].get()), static_cast<int32_t*>(scratch.ids[1].get())};
    for (int64_t w0 = 0; w0 < int64_t(work.size()); w0 += chunk_rows) {
      const int64_t n = std::min<int64_t>(chunk_rows, int64_t(work.size()) - w0);
      const int64_t n_sorted = std::clamp<int64_t>(sorted - w0, 0, n);
      TROUPE_CUDA_OK(prepare_work_rows(logits.type, logits.data, vocab, d_work + w0, n, d_recipes, d_adjust, keys[0],
                                       ids[0], stream()));
      // Greedy rows with adjustments: the argmax of the adjusted copy (before the sort moves buffers).
      TROUPE_CUDA_OK(argmax_rows(dtype::f32, keys[0] + n_sorted * vocab, vocab, vocab, nullptr, d_work + w0 + n_sorted,
                                 n - n_sorted, d_tokens, stream()));
      if (n_sorted == 0) continue;
      size_t temp_bytes = scratch.sort_temp_bytes;
      int current = 0;
      TROUPE_CUDA_OK(sort_work_rows(scratch.sort_temp.get(), &temp_bytes, keys, ids, vocab, n_sorted, d_offsets, &current,
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
  if (s.done == nullptr && !TROUPE_CUDA_OK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming))) return ticket;
  TROUPE_CUDA_OK(cudaEventRecord(s.done, stream()));
  s.records_at = records_at;
  s.with_logprobs = with_logprobs;
  for (int32_t r : with_logprobs)
    s.logprobs_wanted.push_back(int32_t(std::min<int64_t>(batch.rows[size_t(r)].logprobs, vocab)));
  return ticket;
}

bool cuda_backend::sample_ready(int ticket) {
  TROUPE_CHECK(ticket == 0 || ticket == 1);
  const sample_ticket& s = sampling_->tickets[ticket];
  if (!ok() || s.done == nullptr || s.rows == 0) return true;
  const cudaError_t e = cudaEventQuery(s.done);
  if (e == cudaErrorNotReady) return false;
  check(e, "cudaEventQuery", __FILE__, __LINE__);
  return true;
}

void cuda_backend::sample_end(int ticket, sample_result& out) {
  TROUPE_CHECK(ticket == 0 || ticket == 1);
  sample_ticket& s = sampling_->tickets[ticket];
  TROUPE_CHECK(s.pending);
  s.pending = false;
  const auto rows = size_t(s.rows);
  out.tokens.assign(rows, 0);
  out.logprobs.assign(rows, logprobs_entry{});
  if (!ok() || rows == 0 || s.done == nullptr) return;
  TROUPE_CUDA_OK(cudaEventSynchronize(s.done));
  if (!ok()) return;
  std::memcpy(out.tokens.data(), s.host_down, rows * 4);
  const auto* records = reinterpret_cast<const device_logprobs*>(static_cast<std::byte*>(s.host_down) + s.records_at);
  for (size_t k = 0; k < s.with_logprobs.size(); ++k) {
    const auto r = size_t(s.with_logprobs[k]);
    const device_logprobs& d = records[k];
    logprobs_entry& e = out.logprobs[r];
    e.chosen = {d.token, d.logprob};
    e.rank = d.rank;
    for (int32_t j = 0; j < s.logprobs_wanted[k]; ++j) e.top.push_back({d.top_tokens[j], d.top_logprobs[j]});
  }
  for (size_t r = 0; r < rows; ++r)
    if (s.score_tokens[r] >= 0) out.tokens[r] = s.score_tokens[r];
}

void cuda_backend::feed_sampled(int ticket, std::span<const int32_t> rows, index_tensor& ids, std::span<const int32_t> at) {
  TROUPE_CHECK((ticket == 0 || ticket == 1) && rows.size() == at.size());
  const sample_ticket& s = sampling_->tickets[ticket];
  TROUPE_CHECK(s.pending);  // its results are still on the device, unchanged
  flush();
  if (!ok() || rows.empty()) return;
  const auto* tokens = static_cast<const int32_t*>(s.results.get());
  for (size_t first = 0; first < rows.size(); first += feed_pairs) {
    const int count = int(std::min<size_t>(feed_pairs, rows.size() - first));
    feed_args pairs;
    for (int i = 0; i < count; ++i) {
      TROUPE_CHECK(rows[first + size_t(i)] >= 0 && rows[first + size_t(i)] < s.rows);
      TROUPE_CHECK(at[first + size_t(i)] >= 0 && at[first + size_t(i)] < ids.numel());
      pairs.rows[i] = rows[first + size_t(i)];
      pairs.at[i] = at[first + size_t(i)];
    }
    TROUPE_CUDA_OK(feed_tokens(tokens, pairs, count, ids.data, stream()));
  }
}

}  // namespace troupe::kernels::cuda

namespace troupe::kernels::cuda {

std::shared_ptr<sample_scratch> cuda_backend::make_sample_scratch() { return std::make_shared<sample_scratch>(); }

}  // namespace troupe::kernels::cuda
