// Decode steps replayed from backend graphs (CUDA graphs): one graph per padded batch size and
// context bound, recorded the first time it is needed, on fixed buffers whose contents each step
// rewrites. Padding rows are harmless: position 0, no K/V write (slot -1), a context of one key.
#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>

#include "engine/model/llama_model.hpp"

namespace troupe::engine {
namespace {

constexpr int32_t min_graph_len = 256;  // the smallest context bound a graph is recorded for

// Batch sizes graphs are recorded for: 1, 2, 4, 8, then multiples of 8.
int32_t padded_batch(int32_t seqs) {
  if (seqs <= 8) return int32_t(std::bit_ceil(uint32_t(seqs)));
  return (seqs + 7) / 8 * 8;
}

// Where each input sits in graph_inputs_ for a graph of `batch` rows and `width` blocks per table.
struct layout {
  int64_t ids, positions, slots, qsl, seq_lens, rows, order, tables, end;
  layout(int64_t batch, int64_t width)
      : ids(0), positions(batch), slots(2 * batch), qsl(3 * batch), seq_lens(4 * batch + 1),
        rows(5 * batch + 1), order(6 * batch + 1), tables(7 * batch + 1), end(7 * batch + 1 + batch * width) {}
};

kernels::index_tensor view(const kernels::index_tensor& all, int64_t offset, kernels::shape dims) {
  kernels::index_tensor t;
  t.owner = all.owner;
  t.data = all.data + offset;
  t.dims = dims;
  return t;
}

}  // namespace

void llama_model::set_graph_batch(int32_t max_batch) {
  drop_graphs();
  graph_batch_ = std::max(0, max_batch);
}

void llama_model::drop_graphs() {
  for (const auto& [key, id] : graphs_) be_.release_graph(id);
  graphs_.clear();
}

std::optional<expected<kernels::tensor>> llama_model::forward_graph(const step_input& in, kv_cache& cache) {
  const int32_t seqs = in.num_seqs(), rows = int32_t(in.logits_indices.size());
  if (graph_batch_ <= 0 || graphs_unsupported_ || !be_.supports_graphs() || in.num_tokens() != seqs ||
      seqs > graph_batch_)
    return {};
  const int64_t block_size = cache.block_size();
  const int32_t max_graph_len = int32_t(std::bit_ceil(uint32_t(std::max<int64_t>(cfg_.max_position_embeddings, min_graph_len))));
  const int32_t longest = *std::max_element(in.seq_lens.begin(), in.seq_lens.end());
  const graph_key key{padded_batch(seqs), int32_t(std::bit_ceil(uint32_t(std::max(longest, min_graph_len))))};
  const int64_t width = (key.max_len + block_size - 1) / block_size;
  if (key.max_len > max_graph_len) return {};  // (key.batch <= padded_batch(graph_batch_): seqs <= graph_batch_)

  // Graphs read the buffers they were recorded on: new ones (a grown workspace, another cache)
  // make them stale.
  const int32_t capacity = padded_batch(graph_batch_);
  buffers_for(capacity);
  if (logits_.empty() || logits_.dims.rows() < capacity) logits_ = be_.alloc({capacity, cfg_.vocab_size});
  const int64_t now[3] = {int64_t(cache.serial()), workspace_tokens_, logits_.dims.rows()};
  if (!std::equal(now, now + 3, graph_buffers_) || graph_block_size_ != block_size) {
    drop_graphs();
    std::copy(now, now + 3, graph_buffers_);
    graph_block_size_ = block_size;
    const layout most(capacity, (max_graph_len + block_size - 1) / block_size);
    graph_inputs_ = be_.upload_indices(std::vector<int32_t>(size_t(most.end), 0), kernels::shape{most.end});
  }

  const layout at(key.batch, width);
  step_indices idx;
  idx.ids = view(graph_inputs_, at.ids, kernels::shape{key.batch});
  idx.positions = view(graph_inputs_, at.positions, kernels::shape{key.batch});
  idx.slots = view(graph_inputs_, at.slots, kernels::shape{key.batch});
  idx.logits_rows = view(graph_inputs_, at.rows, kernels::shape{key.batch});
  idx.batch.query_start_loc = view(graph_inputs_, at.qsl, kernels::shape{key.batch + 1});
  idx.batch.seq_lens = view(graph_inputs_, at.seq_lens, kernels::shape{key.batch});
  idx.batch.block_tables = view(graph_inputs_, at.tables, kernels::shape{key.batch, width});
  idx.batch.decode_seqs = view(graph_inputs_, at.order, kernels::shape{key.batch});
  idx.batch.max_query_len = 1;
  idx.batch.max_seq_len = key.max_len;
  idx.batch.sliding_window = static_cast<int32_t>(cfg_.sliding_window);
  idx.batch.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg_.head_dim)));

  // This step's inputs, padded to the graph's batch.
  graph_host_.assign(size_t(at.end - at.ids), 0);
  const auto put = [&](int64_t offset, const std::vector<int32_t>& v) {
    std::copy(v.begin(), v.end(), graph_host_.begin() + offset);
  };
  put(at.ids, in.token_ids);
  put(at.positions, in.positions);
  put(at.slots, in.slot_mapping);
  std::fill(graph_host_.begin() + at.slots + seqs, graph_host_.begin() + at.slots + key.batch, -1);
  for (int32_t s = 0; s <= key.batch; ++s) graph_host_[size_t(at.qsl + s)] = s;
  put(at.seq_lens, in.seq_lens);
  std::fill(graph_host_.begin() + at.seq_lens + seqs, graph_host_.begin() + at.seq_lens + key.batch, 1);
  put(at.rows, in.logits_indices);
  graph_order_.resize(size_t(seqs));  // the sequences longest first, then the padding rows
  std::iota(graph_order_.begin(), graph_order_.end(), 0);
  longest_first(graph_order_, in.seq_lens);
  for (int32_t s = seqs; s < key.batch; ++s) graph_order_.push_back(s);
  put(at.order, graph_order_);
  for (int32_t r = rows; r < key.batch; ++r) graph_host_[size_t(at.rows + r)] = r;
  for (int32_t s = 0; s < seqs; ++s) {
    const auto from = in.block_tables.begin() + ptrdiff_t(s) * in.max_blocks_per_seq;
    const int64_t used = std::min<int64_t>(in.max_blocks_per_seq, width);
    std::copy(from, from + used, graph_host_.begin() + at.tables + s * width);
  }
  kernels::index_tensor inputs = view(graph_inputs_, 0, kernels::shape{at.end});
  be_.write_indices(graph_host_, inputs);
  if (!in.fed_rows.empty()) be_.feed_sampled(in.fed_ticket, in.fed_rows, idx.ids, in.fed_at);
  auto found = graphs_.find(key);
  if (found == graphs_.end()) {
    // The first graph of a batch size: the step runs once op by op before it is recorded, so that
    // what a backend settles at a shape's first call (the CUDA backend times cuBLASLt's algorithms
    // for each product) is settled outside the capture. The replay then does the same work again:
    // the same K/V to the same slots, the logits overwritten.
    if (eager_batches_.insert(key.batch).second) run_step(idx, key.batch, key.batch, cache);
    if (!be_.begin_capture()) {
      graphs_unsupported_ = true;
      return {};
    }
    run_step(idx, key.batch, key.batch, cache);
    const int id = be_.end_capture();
    if (id < 0) {
      graphs_unsupported_ = true;
      return expected<kernels::tensor>(make_error("recording a graph for decode steps of ", key.batch,
                                                  " sequences failed: ", be_.last_error(),
                                                  " (TROUPE_CUDA_GRAPHS=0 turns graphs off)"));
    }
    found = graphs_.emplace(key, id).first;
  }

  be_.replay(found->second);
  return expected<kernels::tensor>(logits_.rows(0, rows));
}

}  // namespace troupe::engine
