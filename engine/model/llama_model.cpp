// The Llama-family forward pass: embedding, pre-norm attention and SwiGLU blocks, final norm, logits.
#include "engine/model/llama_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "config/switches.hpp"
#include "engine/model/random_weights.hpp"
#include "engine/model/rope.hpp"
#include "engine/model/weight_check.hpp"
#include "engine/model/weight_store.hpp"

namespace troupe::engine {

using kernels::tensor;

expected<void> check_model_shape(config::model_config& cfg) {
  if (cfg.head_dim == 0 && cfg.num_attention_heads > 0)
    cfg.head_dim = cfg.hidden_size / cfg.num_attention_heads;
  if (cfg.hidden_size <= 0 || cfg.intermediate_size <= 0 || cfg.num_hidden_layers <= 0 ||
      cfg.num_attention_heads <= 0 || cfg.num_key_value_heads <= 0 || cfg.head_dim <= 0 ||
      cfg.vocab_size <= 0 || cfg.max_position_embeddings <= 0)
    return make_error("model shape: every size must be positive (hidden ", cfg.hidden_size,
                      ", intermediate ", cfg.intermediate_size, ", layers ", cfg.num_hidden_layers,
                      ", heads ", cfg.num_attention_heads, ", kv heads ", cfg.num_key_value_heads,
                      ", head_dim ", cfg.head_dim, ", vocab ", cfg.vocab_size, ")");
  if (cfg.num_attention_heads % cfg.num_key_value_heads != 0)
    return make_error("model shape: num_attention_heads ", cfg.num_attention_heads,
                      " is not a multiple of num_key_value_heads ", cfg.num_key_value_heads);
  if (cfg.head_dim % 2 != 0) return make_error("model shape: head_dim ", cfg.head_dim, " is odd");
  if (cfg.vocab_size > INT32_MAX || cfg.max_position_embeddings > INT32_MAX)
    return make_error("model shape: vocabulary or context too large for 32-bit ids");
  return {};
}

expected<std::unique_ptr<llama_model>> llama_model::build(const config::model_config& cfg,
                                                          kernels::backend& be,
                                                          const weight_getter& get,
                                                          std::shared_ptr<const void> keep_alive,
                                                          const load_progress& progress) {
  config::model_config checked = cfg;
  if (auto ok = check_model_shape(checked); !ok) return ok.error();
  std::unique_ptr<llama_model> model(new llama_model(checked, be));
  model->keep_alive_ = std::move(keep_alive);
  if (auto ok = model->upload(get, progress); !ok) return ok.error();
  return model;
}

expected<void> llama_model::upload(const weight_getter& get, const load_progress& progress) {
  const int64_t hidden = cfg_.hidden_size, inter = cfg_.intermediate_size;
  const int64_t q_out = cfg_.num_attention_heads * cfg_.head_dim;
  const int64_t kv_out = cfg_.num_key_value_heads * cfg_.head_dim;
  const int64_t per_layer = 2 * hidden + hidden * (2 * q_out + 2 * kv_out) + 3 * hidden * inter +
                            (cfg_.qkv_bias ? q_out + 2 * kv_out : 0) + (cfg_.o_bias ? hidden : 0);
  const int64_t total = cfg_.vocab_size * hidden * (cfg_.tie_word_embeddings ? 1 : 2) + hidden +
                        cfg_.num_hidden_layers * per_layer;
  int64_t done = 0;
  std::string failed;
  // One checkpoint tensor from the getter (nothing after the first failure), counted for the progress.
  auto read = [&](const std::string& name, const std::vector<int64_t>& dims) -> std::optional<host_weight> {
    if (!failed.empty()) return std::nullopt;
    auto w = get(name, dims);
    if (!w) {
      failed = w.error().message;
      return std::nullopt;
    }
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    done += n;
    if (progress) progress(std::min(done, total), total);
    return *w;
  };
  auto fetch = [&](const std::string& name, const std::vector<int64_t>& dims) -> tensor {
    auto w = read(name, dims);
    if (!w) return {};
    return be_.upload_weight(w->type, w->data, dims.size() == 1 ? kernels::shape{dims[0]} : kernels::shape{dims[0], dims[1]});
  };
  // Several checkpoint tensors stacked by rows into one weight (each [rows_i, cols], or vectors when cols is 0).
  auto stack = [&](const std::vector<std::pair<std::string, int64_t>>& parts, int64_t cols) -> tensor {
    if (!failed.empty()) return {};
    int64_t rows = 0;
    for (const auto& part : parts) rows += part.second;
    tensor all = be_.alloc_weight(cols > 0 ? kernels::shape{rows, cols} : kernels::shape{rows});
    int64_t at = 0;
    for (const auto& [name, n] : parts) {
      auto w = read(name, cols > 0 ? std::vector<int64_t>{n, cols} : std::vector<int64_t>{n});
      if (!w) return {};
      tensor range = all.rows(at, n);
      be_.fill_weight(w->type, w->data, range);
      at += n;
    }
    return all;
  };
  embed_ = fetch("model.embed_tokens.weight", {cfg_.vocab_size, hidden});
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    layer_weights w;
    w.input_norm = fetch(p + "input_layernorm.weight", {hidden});
    const std::string a = p + "self_attn.";
    w.qkv = stack({{a + "q_proj.weight", q_out}, {a + "k_proj.weight", kv_out}, {a + "v_proj.weight", kv_out}}, hidden);
    if (cfg_.qkv_bias)
      w.qkv_bias = stack({{a + "q_proj.bias", q_out}, {a + "k_proj.bias", kv_out}, {a + "v_proj.bias", kv_out}}, 0);
    w.o = fetch(p + "self_attn.o_proj.weight", {hidden, q_out});
    if (cfg_.o_bias) w.o_bias = fetch(p + "self_attn.o_proj.bias", {hidden});
    w.post_norm = fetch(p + "post_attention_layernorm.weight", {hidden});
    w.gate_up = stack({{p + "mlp.gate_proj.weight", inter}, {p + "mlp.up_proj.weight", inter}}, hidden);
    if (failed.empty()) {
      w.gate = w.gate_up.rows(0, inter);
      w.up = w.gate_up.rows(inter, inter);
    }
    w.down = fetch(p + "mlp.down_proj.weight", {hidden, inter});
    layers_.push_back(std::move(w));
  }
  final_norm_ = fetch("model.norm.weight", {hidden});
  lm_head_ = cfg_.tie_word_embeddings ? embed_ : fetch("lm_head.weight", {cfg_.vocab_size, hidden});
  if (!failed.empty()) return error{failed};
  // A float32 weight, so backends that compute in bf16 or f16 keep the angles exact.
  inv_freq_host_ = rope_inv_freq(cfg_);
  inv_freq_ = be_.upload_weight(kernels::dtype::f32, inv_freq_host_.data(),
                                kernels::shape{static_cast<int64_t>(inv_freq_host_.size())});
  return {};
}

expected<std::unique_ptr<llama_model>> llama_model::random(const config::model_config& cfg,
                                                           uint64_t seed, kernels::backend& be) {
  config::model_config checked = cfg;
  if (auto ok = check_model_shape(checked); !ok) return ok.error();
  auto weights = std::make_shared<const random_weights>(checked, seed);
  auto get = [&weights](const std::string& name, const std::vector<int64_t>&) -> expected<host_weight> {
    const std::vector<float>* values = weights->find(name);
    if (values == nullptr) return make_error("random weights: no tensor ", name);
    return host_weight{kernels::dtype::f32, values->data()};
  };
  return build(checked, be, get, weights);
}

expected<std::unique_ptr<llama_model>> llama_model::load(const std::filesystem::path& dir,
                                                         kernels::backend& be, const load_progress& progress) {
  auto cfg = config::load_model_config(dir);
  if (!cfg) return cfg.error();
  auto store = weight_store::open(dir);
  if (!store) return store.error();
  if (auto ok = check_weights(*cfg, **store); !ok) return ok.error();
  std::shared_ptr<const weight_store> weights(std::move(*store));
  auto get = [&weights](const std::string& name, const std::vector<int64_t>& shape) -> expected<host_weight> {
    auto t = weights->get(name, shape);
    if (!t) return t.error();
    return host_weight{(*t)->type, (*t)->data};
  };
  return build(*cfg, be, get, weights, progress);
}

kv_cache_shape llama_model::cache_shape(int64_t num_blocks, int64_t block_size) const {
  return kv_cache_shape{cfg_.num_hidden_layers, num_blocks, block_size, cfg_.num_key_value_heads,
                        cfg_.head_dim};
}

std::unique_ptr<kv_cache> llama_model::make_kv_cache(int64_t num_blocks, int64_t block_size) {
  return std::make_unique<kv_cache>(be_, cache_shape(num_blocks, block_size));
}

std::unique_ptr<kv_cache> llama_model::make_kv_cache_for_tokens(int64_t tokens, int64_t block_size) {
  return make_kv_cache(std::max<int64_t>(1, (tokens + block_size - 1) / block_size), block_size);
}

// Activation buffers of one step, sized by its token count.
struct llama_model::step_buffers {
  tensor residual, x, qkv, q, attn, h, gate_up, act, picked;
};

llama_model::llama_model(const config::model_config& cfg, kernels::backend& be) : cfg_(cfg), be_(be) {
  if (config::switched_off("TROUPE_CUDA_GRAPHS")) graph_batch_ = 0;
}

llama_model::~llama_model() { drop_graphs(); }

llama_model::step_buffers& llama_model::buffers_for(int64_t tokens) {
  if (tokens > workspace_tokens_) {
    const int64_t hidden = cfg_.hidden_size, inter = cfg_.intermediate_size, dim = cfg_.head_dim;
    workspace_ = std::make_unique<step_buffers>();
    step_buffers& w = *workspace_;
    w.residual = be_.alloc({tokens, hidden});
    w.x = be_.alloc({tokens, hidden});
    w.h = be_.alloc({tokens, hidden});
    w.qkv = be_.alloc({tokens, cfg_.num_attention_heads + 2 * cfg_.num_key_value_heads, dim});
    w.q = be_.alloc({tokens, cfg_.num_attention_heads, dim});
    w.attn = be_.alloc({tokens, cfg_.num_attention_heads, dim});
    w.gate_up = be_.alloc({tokens, 2 * inter});
    w.act = be_.alloc({tokens, inter});
    w.picked = be_.alloc({tokens, hidden});
    workspace_tokens_ = tokens;
  }
  return *workspace_;
}

expected<void> llama_model::check_input(const step_input& in, const kv_cache& cache) const {
  const int32_t tokens = in.num_tokens(), seqs = in.num_seqs();
  const auto& shape = cache.shape();
  if (shape.num_layers != cfg_.num_hidden_layers || shape.num_kv_heads != cfg_.num_key_value_heads ||
      shape.head_dim != cfg_.head_dim)
    return make_error("step: the KV cache was made for another model shape");
  if (in.positions.size() != in.token_ids.size() || in.slot_mapping.size() != in.token_ids.size())
    return make_error("step: token_ids, positions and slot_mapping differ in length");
  if (in.query_start_loc.size() != static_cast<size_t>(seqs) + 1 || in.max_blocks_per_seq <= 0 ||
      in.block_tables.size() != static_cast<size_t>(seqs) * static_cast<size_t>(in.max_blocks_per_seq))
    return make_error("step: query_start_loc, seq_lens and block_tables disagree on the batch size");
  if (seqs == 0 || in.query_start_loc[0] != 0 || in.query_start_loc[static_cast<size_t>(seqs)] != tokens)
    return make_error("step: query_start_loc must run from 0 to the token count");
  const int64_t num_slots = shape.num_blocks * shape.block_size;
  for (int32_t t = 0; t < tokens; ++t) {
    int32_t id = in.token_ids[static_cast<size_t>(t)], pos = in.positions[static_cast<size_t>(t)];
    if (id < 0 || id >= cfg_.vocab_size)
      return make_error("step: token id ", id, " is outside the vocabulary of ", cfg_.vocab_size);
    if (pos < 0 || pos >= cfg_.max_position_embeddings)
      return make_error("step: position ", pos, " is outside [0, ", cfg_.max_position_embeddings, ")");
    if (in.slot_mapping[static_cast<size_t>(t)] >= num_slots)
      return make_error("step: slot ", in.slot_mapping[static_cast<size_t>(t)], " is outside the cache");
  }
  for (int32_t s = 0; s < seqs; ++s) {
    int32_t q_len = in.query_start_loc[static_cast<size_t>(s) + 1] - in.query_start_loc[static_cast<size_t>(s)];
    int32_t len = in.seq_lens[static_cast<size_t>(s)];
    if (q_len < 0 || len < q_len || len > int64_t{in.max_blocks_per_seq} * shape.block_size)
      return make_error("step: sequence ", s, " has ", q_len, " new tokens and length ", len,
                        ", which its block table cannot hold");
    for (int32_t j = 0; j < q_len; ++j) {
      int32_t t = in.query_start_loc[static_cast<size_t>(s)] + j;
      if (in.positions[static_cast<size_t>(t)] != len - q_len + j)
        return make_error("step: token row ", t, " has position ", in.positions[static_cast<size_t>(t)],
                          " but its sequence places it at ", len - q_len + j);
    }
    for (int64_t b = 0; b * shape.block_size < len; ++b) {
      int32_t block = in.block_tables[static_cast<size_t>(s * in.max_blocks_per_seq + b)];
      if (block < 0 || block >= shape.num_blocks)
        return make_error("step: sequence ", s, " uses block ", block, " outside the cache");
    }
  }
  if (in.fed_rows.size() != in.fed_at.size() || (in.fed_ticket < 0 && !in.fed_rows.empty()))
    return make_error("step: fed_rows and fed_at differ in length, or name no sample ticket");
  for (int32_t t : in.fed_at)
    if (t < 0 || t >= tokens) return make_error("step: a fed token row ", t, " is outside the step's ", tokens, " tokens");
  for (int32_t r : in.logits_indices)
    if (r < 0 || r >= tokens) return make_error("step: logits index ", r, " is not a token row");
  return {};
}

void llama_model::run_layer(int64_t layer, step_buffers& buf, const step_indices& in, kv_cache& cache,
                            bool first) {
  const layer_weights& w = layers_[static_cast<size_t>(layer)];
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  if (first)
    be_.rms_norm(buf.residual, w.input_norm, eps, buf.x);
  else
    be_.add_rms_norm(buf.h, buf.residual, w.input_norm, eps, buf.x);
  be_.matmul(buf.x, w.qkv, cfg_.qkv_bias ? &w.qkv_bias : nullptr, buf.qkv);
  be_.rope_write_kv(buf.qkv, buf.q, in.positions, inv_freq_, in.slots, cache.keys(layer), cache.values(layer));
  be_.paged_attention(buf.q, cache.keys(layer), cache.values(layer), in.batch, buf.attn);
  be_.matmul(buf.attn, w.o, cfg_.o_bias ? &w.o_bias : nullptr, buf.h);
  be_.add_rms_norm(buf.h, buf.residual, w.post_norm, eps, buf.x);
  if (!be_.gated_matmul(buf.x, w.gate, w.up, buf.act)) {
    be_.matmul(buf.x, w.gate_up, nullptr, buf.gate_up);
    be_.silu_and_mul(buf.gate_up, buf.act);
  }
  be_.matmul(buf.act, w.down, nullptr, buf.h);
}

expected<std::vector<float>> llama_model::forward(const step_input& in, kv_cache& cache) {
  auto out = forward_device(in, cache);
  if (!out) return out.error();
  std::vector<float> logits(static_cast<size_t>(out->numel()));
  if (!logits.empty()) be_.copy_to_host(*out, logits);
  return logits;
}

kernels::tensor llama_model::run_step(const step_indices& in, int64_t tokens, int64_t rows, kv_cache& cache) {
  step_buffers& all = buffers_for(tokens);
  step_buffers buf{all.residual.rows(0, tokens), all.x.rows(0, tokens), all.qkv.rows(0, tokens),
                   all.q.rows(0, tokens),        all.attn.rows(0, tokens), all.h.rows(0, tokens),
                   all.gate_up.rows(0, tokens),  all.act.rows(0, tokens),  all.picked.rows(0, rows)};
  be_.embedding(embed_, in.ids, buf.residual);
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) run_layer(l, buf, in, cache, l == 0);
  be_.add_rms_norm(buf.h, buf.residual, final_norm_, static_cast<float>(cfg_.rms_norm_eps), buf.x);
  if (rows == 0) return tensor{};  // the step only fills the cache
  be_.gather_rows(buf.x, in.logits_rows, buf.picked);
  if (logits_.empty() || logits_.dims.rows() < rows) logits_ = be_.alloc({rows, cfg_.vocab_size});
  tensor out = logits_.rows(0, rows);
  be_.matmul(buf.picked, lm_head_, nullptr, out);
  return out;
}

void llama_model::prepare_products(int64_t max_tokens, int64_t max_scored) {
  const std::vector<int64_t> counts = be_.matmul_rows_to_prepare(max_tokens);
  if (counts.empty() || layers_.empty()) return;
  const int64_t most = counts.back(), hidden = cfg_.hidden_size;
  step_buffers& buf = buffers_for(most);
  const int64_t scored = std::min(max_scored, most);
  if (logits_.empty() || logits_.dims.rows() < scored) logits_ = be_.alloc({scored, cfg_.vocab_size});
  // Inputs of a model's scale (timings on zeros or stale memory can mislead): normalised embedding
  // rows; SiLU of the gate/up product; embedding rows as attention outputs where they are as wide.
  std::vector<int32_t> ids(static_cast<size_t>(most));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % size_t(cfg_.vocab_size));
  const kernels::index_tensor id_rows = be_.upload_indices(ids, kernels::shape{most});
  be_.embedding(embed_, id_rows, buf.residual);
  be_.rms_norm(buf.residual, final_norm_, static_cast<float>(cfg_.rms_norm_eps), buf.x);
  if (cfg_.num_attention_heads * cfg_.head_dim == hidden) {
    tensor attn = buf.attn;
    attn.dims = kernels::shape{most, hidden};
    be_.embedding(embed_, id_rows, attn);
  }
  const layer_weights& w = layers_.front();
  be_.matmul(buf.x, w.gate_up, nullptr, buf.gate_up);
  be_.silu_and_mul(buf.gate_up, buf.act);
  for (int64_t m : counts) {
    tensor qkv = buf.qkv.rows(0, m), h = buf.h.rows(0, m), gate_up = buf.gate_up.rows(0, m);
    be_.matmul(buf.x.rows(0, m), w.qkv, nullptr, qkv);
    be_.matmul(buf.attn.rows(0, m), w.o, nullptr, h);
    be_.matmul(buf.x.rows(0, m), w.gate_up, nullptr, gate_up);
    be_.matmul(buf.act.rows(0, m), w.down, nullptr, h);
    if (m <= scored) {
      tensor logits = logits_.rows(0, m);
      be_.matmul(buf.x.rows(0, m), lm_head_, nullptr, logits);
    }
  }
  be_.synchronize();
}

void llama_model::longest_first(std::vector<int32_t>& seqs, const std::vector<int32_t>& seq_lens) {
  std::stable_sort(seqs.begin(), seqs.end(), [&](int32_t a, int32_t b) {
    return seq_lens[static_cast<size_t>(a)] > seq_lens[static_cast<size_t>(b)];
  });
}

expected<kernels::tensor> llama_model::forward_device(const step_input& in, kv_cache& cache) {
  if (auto ok = check_input(in, cache); !ok) return ok.error();
  const int64_t tokens = in.num_tokens(), seqs = in.num_seqs();
  const auto rows = static_cast<int64_t>(in.logits_indices.size());
  kernels::tensor none;  // no rows to score
  none.type = be_.compute_type();
  none.dims = kernels::shape{0, cfg_.vocab_size};
  if (tokens == 0) return none;
  if (rows > 0)
    if (auto graphed = forward_graph(in, cache)) return std::move(*graphed);
  step_indices idx;
  idx.ids = be_.upload_indices(in.token_ids, kernels::shape{tokens});
  if (!in.fed_rows.empty()) be_.feed_sampled(in.fed_ticket, in.fed_rows, idx.ids, in.fed_at);
  idx.positions = be_.upload_indices(in.positions, kernels::shape{tokens});
  idx.slots = be_.upload_indices(in.slot_mapping, kernels::shape{tokens});
  kernels::attention_batch& batch = idx.batch;
  batch.query_start_loc = be_.upload_indices(in.query_start_loc, kernels::shape{seqs + 1});
  batch.seq_lens = be_.upload_indices(in.seq_lens, kernels::shape{seqs});
  batch.block_tables = be_.upload_indices(in.block_tables, kernels::shape{seqs, in.max_blocks_per_seq});
  for (int64_t s = 0; s < seqs; ++s) {
    auto su = static_cast<size_t>(s);
    batch.max_query_len = std::max(batch.max_query_len, in.query_start_loc[su + 1] - in.query_start_loc[su]);
    batch.max_seq_len = std::max(batch.max_seq_len, in.seq_lens[su]);
  }
  {  // which sequences decode (longest context first) and which do not
    std::vector<int32_t> singles, others;
    for (int32_t s = 0; s < seqs; ++s) {
      auto su = static_cast<size_t>(s);
      (in.query_start_loc[su + 1] - in.query_start_loc[su] == 1 ? singles : others).push_back(s);
    }
    longest_first(singles, in.seq_lens);
    if (!singles.empty()) {
      batch.decode_seqs = be_.upload_indices(singles, kernels::shape{static_cast<int64_t>(singles.size())});
      if (!others.empty())
        batch.prefill_seqs = be_.upload_indices(others, kernels::shape{static_cast<int64_t>(others.size())});
    }
  }
  batch.sliding_window = static_cast<int32_t>(cfg_.sliding_window);
  batch.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg_.head_dim)));
  if (rows == 0) {
    run_step(idx, tokens, 0, cache);
    return none;
  }
  idx.logits_rows = be_.upload_indices(in.logits_indices, kernels::shape{rows});
  return run_step(idx, tokens, rows, cache);
}

}  // namespace troupe::engine
