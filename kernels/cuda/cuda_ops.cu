// The CUDA backend's ops: shape checks, then our kernels or cuBLAS on the backend's stream.
#include <algorithm>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/cuda_backend_impl.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/embedding.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/rms_norm.cuh"
#include "kernels/cuda/rope_kv.cuh"

namespace troupe::kernels::cuda {
namespace {

cudaDataType_t blas_type(dtype t) {
  switch (t) {
    case dtype::bf16: return CUDA_R_16BF;
    case dtype::f16: return CUDA_R_16F;
    case dtype::f32: return CUDA_R_32F;
  }
  return CUDA_R_32F;
}

// The sequences an optional list of attention_batch names (none when it is absent).
int64_t listed(const index_tensor& list) { return list.data != nullptr ? list.numel() : 0; }

}  // namespace

void cuda_backend::flush() {
  if (rope_) {
    const pending_rope r = std::move(*rope_);
    rope_.reset();
    launch_rope(r);
  }
  if (pending_.empty()) return;
  gemv_batch b;
  for (const auto& p : pending_) {
    b.w[b.count] = p.w.data;
    b.bias[b.count] = p.bias.empty() ? nullptr : p.bias.as<float>();
    b.out[b.count] = p.out.data;
    b.n[b.count] = p.w.dims.rows();
    ++b.count;
  }
  const pending_gemv first = pending_[0];
  pending_.clear();
  if (!ok()) return;
  profile_scope timing(*this, b.count == 1 ? "matmul (gemv)" : "matmul (gemv, batched)");
  TROUPE_CUDA_OK(gemv_batched(compute_, first.x.data, b, first.x.numel(), gemv_variant_, num_sms_, stream()));
}

void cuda_backend::embedding(const tensor& table, const index_tensor& ids, tensor& out) {
  const int64_t hidden = table.dims.row_size();
  TROUPE_CHECK(table.type == compute_ && out.type == compute_ && out.numel() == ids.numel() * hidden);
  flush();
  if (!ok()) return;
  profile_scope timing(*this, "embedding");
  TROUPE_CUDA_OK(cuda::embedding(compute_, table.data, table.dims.rows(), hidden, ids.data, ids.numel(), out.data,
                                 stream()));
}

void cuda_backend::rms_norm(const tensor& x, const tensor& weight, float eps, tensor& out) {
  const int64_t n = weight.numel();
  TROUPE_CHECK(weight.type == dtype::f32 && x.type == compute_ && out.type == compute_);
  TROUPE_CHECK(x.dims.row_size() == n && out.numel() == x.numel());
  flush();
  if (!ok()) return;
  profile_scope timing(*this, "rms_norm");
  TROUPE_CUDA_OK(cuda::rms_norm(compute_, x.data, nullptr, weight.as<float>(), eps, x.dims.rows(), n, out.data,
                                stream()));
}

void cuda_backend::add_rms_norm(const tensor& x, tensor& residual, const tensor& weight, float eps, tensor& out) {
  const int64_t n = weight.numel();
  TROUPE_CHECK(weight.type == dtype::f32 && x.type == compute_ && residual.type == compute_ && out.type == compute_);
  TROUPE_CHECK(x.numel() == residual.numel() && out.numel() == x.numel() && x.dims.row_size() == n);
  flush();
  if (!ok()) return;
  profile_scope timing(*this, "add_rms_norm");
  TROUPE_CUDA_OK(cuda::rms_norm(compute_, x.data, residual.data, weight.as<float>(), eps, x.dims.rows(), n, out.data,
                                stream()));
}

void cuda_backend::matmul(const tensor& x, const tensor& weight, const tensor* bias, tensor& out) {
  const int64_t m = x.dims.rows(), k = x.dims.row_size(), n = weight.dims.rows();
  TROUPE_CHECK(x.type == compute_ && weight.type == compute_ && out.type == compute_);
  TROUPE_CHECK(weight.dims.row_size() == k && out.numel() == m * n);
  const bool has_bias = bias != nullptr && !bias->empty();
  if (has_bias) TROUPE_CHECK(bias->numel() == n && bias->type == dtype::f32);
  if (!ok() || m == 0) return;
  if (m == 1 && gemv_variant_ > 0 && gemv_supported(compute_, x.data, weight.data, k)) {
    if (!pending_.empty() && (pending_[0].x.data != x.data || pending_[0].x.numel() != k ||
                              pending_.size() == size_t{gemv_batch::max_count}))
      flush();
    pending_.push_back({x, weight, has_bias ? *bias : tensor{}, out});
    return;
  }
  flush();
  profile_scope timing(*this, m <= 64 ? "matmul (cuBLAS, m<=64)" : m <= 512 ? "matmul (cuBLAS, m<=512)"
                                                                   : "matmul (cuBLAS, m>512)");
  const gemm_args g{blas_type(compute_), m, n, k, x.data, weight.data, out.data};
  if (use_lt_ && m <= lt_max_rows_)
    TROUPE_CUBLAS_OK(lt_->run(g, stream()));  // kernels/cuda/lt_matmul.cu
  else
    TROUPE_CUBLAS_OK(gemm_ex(*cublas_, blas_, g));
  if (has_bias) TROUPE_CUDA_OK(add_bias(compute_, out.data, bias->as<float>(), m, n, stream()));
}

std::vector<int64_t> cuda_backend::matmul_rows_to_prepare(int64_t max_rows) const {
  std::vector<int64_t> rows;
  if (!use_lt_) return rows;
  const int64_t most = std::min(max_rows, lt_max_rows_);
  for (int64_t m = 2; m <= most; m = rows.back() + 1) rows.push_back(lt_matmul::m_bucket(m));
  return rows;
}

void cuda_backend::rope_write_kv(const tensor& qkv, tensor& q, const index_tensor& positions, const tensor& inv_freq,
                                 const index_tensor& slot_mapping, tensor& k_cache, tensor& v_cache) {
  TROUPE_CHECK(q.dims.rank() == 3 && qkv.dims.rank() == 3 && qkv.dims[0] == q.dims[0] && k_cache.dims.rank() == 4);
  const int64_t tokens = q.dims[0], heads = q.dims[1], head_dim = q.dims[2], kv_heads = k_cache.dims[2];
  TROUPE_CHECK(qkv.dims[1] == heads + 2 * kv_heads && qkv.dims[2] == head_dim && inv_freq.numel() == head_dim / 2);
  TROUPE_CHECK(inv_freq.type == dtype::f32 && q.type == compute_ && qkv.type == compute_);
  TROUPE_CHECK(positions.numel() == tokens && slot_mapping.numel() == tokens);
  TROUPE_CHECK(k_cache.dims[3] == head_dim && v_cache.dims == k_cache.dims && k_cache.type == compute_ &&
               v_cache.type == compute_);
  flush();
  if (!ok()) return;
  pending_rope r{qkv, q, inv_freq, k_cache, v_cache, positions, slot_mapping};
  if (fuse_rope_)
    rope_ = std::move(r);  // paged_attention may take it (decode rows), else the next op launches it
  else
    launch_rope(r);
}

void cuda_backend::launch_rope(const pending_rope& r) {
  if (!ok()) return;
  profile_scope timing(*this, "rope_write_kv");
  rope_kv_args a;
  a.qkv = r.qkv.data;
  a.q = r.q.data;
  a.positions = r.positions.data;
  a.inv_freq = r.inv_freq.as<float>();
  a.slots = r.slots.data;
  a.k_cache = r.k_cache.data;
  a.v_cache = r.v_cache.data;
  a.tokens = r.q.dims[0];
  a.num_slots = r.k_cache.dims[0] * r.k_cache.dims[1];
  a.heads = static_cast<int>(r.q.dims[1]);
  a.kv_heads = static_cast<int>(r.k_cache.dims[2]);
  a.head_dim = static_cast<int>(r.q.dims[2]);
  TROUPE_CUDA_OK(cuda::rope_write_kv(compute_, a, stream()));
}

void cuda_backend::paged_attention(const tensor& q, const tensor& k_cache, const tensor& v_cache,
                                   const attention_batch& batch, tensor& out) {
  TROUPE_CHECK(q.dims.rank() == 3 && k_cache.dims.rank() == 4 && k_cache.dims[3] == q.dims[2]);
  TROUPE_CHECK(k_cache.dims[2] > 0 && q.dims[1] % k_cache.dims[2] == 0 && out.numel() == q.numel());
  TROUPE_CHECK(v_cache.dims == k_cache.dims && batch.query_start_loc.numel() == batch.seq_lens.numel() + 1);
  TROUPE_CHECK(q.type == compute_ && out.type == compute_ && k_cache.type == compute_);
  // A small decode batch of an MHA model right after its rope_write_kv takes that op in (the per-row
  // kernel rotates q and writes each row's key and value itself): one launch and one wait fewer where
  // the step is latency-bound (decode-1 Llama-2-7B on an H100: +0.4-1.3%). Batches too large for the
  // split plan keep the op apart: there every block rotating its q was slower than one RoPE pass
  // (offline-256 -1.2%). So do GQA models, whose blocks each rotate several query heads: decode-1
  // Llama-3-8B ran at 158.9 tok/s fused against 166.6 apart. (The kernel takes any group of up to 8.)
  std::optional<pending_rope> rope;
  const int64_t group = q.dims[1] / k_cache.dims[2];
  if (rope_ && rope_->q.data == q.data && rope_->k_cache.data == k_cache.data && rope_->v_cache.data == v_cache.data &&
      batch.max_query_len == 1 && q.dims[0] == batch.seq_lens.numel() && group <= fused_rope_group_ && q.dims[2] >= 16 &&
      rows_supported(static_cast<int>(q.dims[2])) && q.dims[0] * k_cache.dims[2] < rows_split_below(num_sms_))
    rope.swap(rope_);  // rope_ is left empty: flush() has nothing of it to launch
  flush();
  if (!ok() || q.dims[0] == 0) return;
  attention_args a;
  if (rope) {
    a.rope_qkv = rope->qkv.data;
    a.rope_positions = rope->positions.data;
    a.rope_slots = rope->slots.data;
    a.rope_inv_freq = rope->inv_freq.as<float>();
    a.rope_num_slots = k_cache.dims[0] * k_cache.dims[1];
  }
  a.q = q.data;
  a.k_cache = k_cache.data;
  a.v_cache = v_cache.data;
  a.out = out.data;
  a.query_start_loc = batch.query_start_loc.data;
  a.seq_lens = batch.seq_lens.data;
  a.block_tables = batch.block_tables.data;
  a.num_seqs = static_cast<int>(batch.seq_lens.numel());
  a.tokens = static_cast<int>(q.dims[0]);
  a.heads = static_cast<int>(q.dims[1]);
  a.kv_heads = static_cast<int>(k_cache.dims[2]);
  a.head_dim = static_cast<int>(q.dims[2]);
  a.block_size = static_cast<int>(k_cache.dims[1]);
  a.max_blocks = static_cast<int>(batch.block_tables.dims[1]);
  a.max_query_len = batch.max_query_len;
  a.max_seq_len = batch.max_seq_len;
  a.sliding_window = batch.sliding_window;
  a.scale = batch.scale;
  if (a.max_query_len <= 0 || a.max_seq_len <= 0) {  // the host bounds are needed for the launch
    check(cudaErrorInvalidValue, "paged_attention: max_query_len and max_seq_len must be set", __FILE__, __LINE__);
    return;
  }
  if (prefill_kernel_ && a.max_query_len > 1 && prefill_supported(compute_, a.head_dim)) {
    // An absent list is an empty index_tensor, whose shape (rank 0) still counts one element.
    const int64_t singles = listed(batch.decode_seqs), others = listed(batch.prefill_seqs);
    if (singles > 0 && others > 0 && singles + others == a.num_seqs && rows_supported(a.head_dim)) {
      // A mixed step: the one-row sequences through the per-row kernel (split over long contexts,
      // several query heads per K/V load), only the prompt chunks through the prefill kernel's tiles.
      // Unless profiled or recorded, the two run at once: the per-row kernel on the side stream
      // (memory-bound) beside the prefill kernel (latency-bound, few blocks per SM) on the stream.
      attention_args d = a;
      d.seq_list = batch.decode_seqs.data;
      d.tokens = d.num_seqs = static_cast<int>(singles);
      d.max_query_len = 1;
      const bool fork = fork_attention_ && !profiling_ && !capturing_;
      std::shared_ptr<void> scratch = attention_rows_call(d, "attention (rows kernel, mixed step)",
                                                          fork ? ctx_->side : stream());
      a.seq_list = batch.prefill_seqs.data;
      a.num_seqs = static_cast<int>(others);
      {
        profile_scope timing(*this, "attention (prefill kernel)");
        TROUPE_CUDA_OK(attention_prefill(compute_, a, stream()));
      }
      if (fork) {  // the stream waits for the side stream before the scratch is freed on it
        TROUPE_CUDA_OK(cudaEventRecord(ctx_->join, ctx_->side));
        TROUPE_CUDA_OK(cudaStreamWaitEvent(stream(), ctx_->join, 0));
      }
      return;
    }
    profile_scope timing(*this, "attention (prefill kernel)");
    TROUPE_CUDA_OK(attention_prefill(compute_, a, stream()));
    return;
  }
  if (!rows_supported(a.head_dim)) {
    check(cudaErrorInvalidValue, "paged_attention: head_dim must be 8, 16, 32, 64, 128 or 256", __FILE__, __LINE__);
    return;
  }
  // A decode batch in the model's order, longest context first: the longest rows start first and
  // the short ones fill in at the end (a block's work grows with its row's context).
  if (a.max_query_len == 1 && a.tokens == a.num_seqs && listed(batch.decode_seqs) == a.num_seqs)
    a.seq_list = batch.decode_seqs.data;
  attention_rows_call(a, rope ? "attention (rows kernel, RoPE and K/V write fused)" : "attention (rows kernel)", stream());
}

std::shared_ptr<void> cuda_backend::attention_rows_call(const attention_args& a, const char* label, cudaStream_t on) {
  const split_plan plan = plan_rows(a, num_sms_);
  std::shared_ptr<void> scratch;
  if (plan.scratch_floats > 0) {
    scratch = device_bytes(static_cast<size_t>(plan.scratch_floats) * sizeof(float));
    if (scratch == nullptr) return nullptr;
  }
  if (plan.counters > split_counters_len_) {  // zeroed once; the kernel leaves them zero
    if (capturing_) {  // a graph must not own them: they outlive it
      check(cudaErrorInvalidValue, "paged_attention: more split counters than reserved for graphs", __FILE__, __LINE__);
      return nullptr;
    }
    split_counters_ = device_bytes(static_cast<size_t>(plan.counters) * sizeof(int));
    if (split_counters_ == nullptr) return nullptr;
    TROUPE_CUDA_OK(cudaMemsetAsync(split_counters_.get(), 0, static_cast<size_t>(plan.counters) * sizeof(int), stream()));
    split_counters_len_ = plan.counters;
  }
  if (on != stream()) {  // memory set up above, and the inputs, before the side stream starts
    TROUPE_CUDA_OK(cudaEventRecord(ctx_->fork, stream()));
    TROUPE_CUDA_OK(cudaStreamWaitEvent(on, ctx_->fork, 0));
  }
  profile_scope timing(*this, label);
  TROUPE_CUDA_OK(attention_rows(compute_, a, plan, static_cast<float*>(scratch.get()),
                                static_cast<int*>(split_counters_.get()), on));
  return scratch;
}

bool cuda_backend::gated_matmul(const tensor& x, const tensor& gate, const tensor& up, tensor& out) {
  const int64_t k = x.dims.row_size(), n = gate.dims.rows();
  if (x.dims.rows() != 1 || gemv_variant_ == 0 || up.dims != gate.dims || gate.dims.row_size() != k ||
      out.numel() != n || x.type != compute_ || gate.type != compute_ || up.type != compute_ || out.type != compute_ ||
      !gemv_supported(compute_, x.data, gate.data, k) || !gemv_supported(compute_, x.data, up.data, k))
    return false;
  flush();
  if (!ok()) return true;
  profile_scope timing(*this, "matmul (gate/up + SiLU gemv)");
  TROUPE_CUDA_OK(gemv_gated(compute_, x.data, gate.data, up.data, out.data, n, k, stream()));
  return true;
}

void cuda_backend::silu_and_mul(const tensor& gate_up, tensor& out) {
  const int64_t rows = gate_up.dims.rows(), n = gate_up.dims.row_size() / 2;
  TROUPE_CHECK(gate_up.dims.row_size() == 2 * n && out.numel() == rows * n);
  TROUPE_CHECK(gate_up.type == compute_ && out.type == compute_);
  flush();
  if (!ok()) return;
  profile_scope timing(*this, "silu_and_mul");
  TROUPE_CUDA_OK(cuda::silu_and_mul(compute_, gate_up.data, out.data, rows, n, stream()));
}

void cuda_backend::add(const tensor& a, const tensor& b, tensor& out) {
  TROUPE_CHECK(a.numel() == b.numel() && out.numel() == a.numel());
  TROUPE_CHECK(a.type == compute_ && b.type == compute_ && out.type == compute_);
  flush();
  if (!ok()) return;
  profile_scope timing(*this, "add");
  TROUPE_CUDA_OK(cuda::add(compute_, a.data, b.data, out.data, a.numel(), stream()));
}

void cuda_backend::gather_rows(const tensor& x, const index_tensor& rows, tensor& out) {
  const int64_t n = x.dims.row_size();
  TROUPE_CHECK(out.numel() == rows.numel() * n && x.type == compute_ && out.type == compute_);
  flush();
  if (!ok()) return;
  profile_scope timing(*this, "gather_rows");
  TROUPE_CUDA_OK(cuda::gather_rows(compute_, x.data, x.dims.rows(), n, rows.data, rows.numel(), out.data, stream()));
}

}  // namespace troupe::kernels::cuda
