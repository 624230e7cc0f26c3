// The Llama-family forward pass: against a dense double-precision reference, and invariant under
// batching, chunking, token-by-token feeding and block size; RoPE tables; clear errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "engine/model/llama_model.hpp"
#include "engine/model/random_weights.hpp"
#include "engine/model/rope.hpp"
#include "engine/model/sequence_runner.hpp"

using namespace troupe;
using namespace troupe::engine;

namespace {

config::model_config tiny_config() {
  config::model_config cfg;
  cfg.hidden_size = 32;
  cfg.intermediate_size = 48;
  cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 2;
  cfg.head_dim = 8;
  cfg.vocab_size = 50;
  cfg.max_position_embeddings = 128;
  cfg.rms_norm_eps = 1e-5;
  return cfg;
}

std::vector<int32_t> random_ids(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> ids(n);
  for (auto& x : ids) x = dist(rng);
  return ids;
}

void require_close(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - want[i])));
  REQUIRE(worst <= tol);
}

// A dense, unpaged forward pass in double precision, written from the Hugging Face model code.
std::vector<float> reference_logits(const config::model_config& cfg, const random_weights& w,
                                    const std::vector<int32_t>& ids) {
  const size_t n = ids.size(), hid = size_t(cfg.hidden_size), heads = size_t(cfg.num_attention_heads);
  const size_t kvh = size_t(cfg.num_key_value_heads), dim = size_t(cfg.head_dim), inter = size_t(cfg.intermediate_size);
  auto W = [&](const std::string& name) { return *w.find(name); };
  auto linear = [](const std::vector<double>& x, const std::vector<float>& m, size_t in, size_t out,
                   const std::vector<float>* bias) {
    size_t rows = x.size() / in;
    std::vector<double> y(rows * out);
    for (size_t r = 0; r < rows; ++r)
      for (size_t o = 0; o < out; ++o) {
        double s = bias ? (*bias)[o] : 0.0;
        for (size_t i = 0; i < in; ++i) s += x[r * in + i] * m[o * in + i];
        y[r * out + o] = s;
      }
    return y;
  };
  auto norm = [&](const std::vector<double>& x, const std::vector<float>& g) {
    std::vector<double> y(x.size());
    for (size_t r = 0; r < x.size() / hid; ++r) {
      double ss = 0;
      for (size_t i = 0; i < hid; ++i) ss += x[r * hid + i] * x[r * hid + i];
      double inv = 1.0 / std::sqrt(ss / double(hid) + cfg.rms_norm_eps);
      for (size_t i = 0; i < hid; ++i) y[r * hid + i] = x[r * hid + i] * inv * g[i];
    }
    return y;
  };
  std::vector<float> freq = rope_inv_freq(cfg);
  auto rope = [&](std::vector<double>& x, size_t nh) {
    for (size_t t = 0; t < n; ++t)
      for (size_t h = 0; h < nh; ++h)
        for (size_t i = 0; i < dim / 2; ++i) {
          double a = double(float(t) * freq[i]);
          double& x1 = x[(t * nh + h) * dim + i];
          double& x2 = x[(t * nh + h) * dim + i + dim / 2];
          double r1 = x1 * std::cos(a) - x2 * std::sin(a), r2 = x2 * std::cos(a) + x1 * std::sin(a);
          x1 = r1;
          x2 = r2;
        }
  };
  std::vector<double> h(n * hid);
  const auto& emb = W("model.embed_tokens.weight");
  for (size_t t = 0; t < n; ++t)
    for (size_t i = 0; i < hid; ++i) h[t * hid + i] = emb[size_t(ids[t]) * hid + i];
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    auto x = norm(h, W(p + "input_layernorm.weight"));
    auto bias = [&](const char* name) { return cfg.qkv_bias ? w.find(p + name) : nullptr; };
    auto q = linear(x, W(p + "self_attn.q_proj.weight"), hid, heads * dim, bias("self_attn.q_proj.bias"));
    auto k = linear(x, W(p + "self_attn.k_proj.weight"), hid, kvh * dim, bias("self_attn.k_proj.bias"));
    auto v = linear(x, W(p + "self_attn.v_proj.weight"), hid, kvh * dim, bias("self_attn.v_proj.bias"));
    rope(q, heads);
    rope(k, kvh);
    std::vector<double> att(n * heads * dim, 0.0);
    for (size_t t = 0; t < n; ++t)
      for (size_t hd = 0; hd < heads; ++hd) {
        size_t g = hd / (heads / kvh);
        size_t first = cfg.sliding_window > 0 && t + 1 > size_t(cfg.sliding_window) ? t + 1 - size_t(cfg.sliding_window) : 0;
        std::vector<double> s;
        for (size_t j = first; j <= t; ++j) {
          double d = 0;
          for (size_t c = 0; c < dim; ++c) d += q[(t * heads + hd) * dim + c] * k[(j * kvh + g) * dim + c];
          s.push_back(d / std::sqrt(double(dim)));
        }
        double top = *std::max_element(s.begin(), s.end()), sum = 0;
        for (auto& e : s) sum += (e = std::exp(e - top));
        for (size_t j = first; j <= t; ++j)
          for (size_t c = 0; c < dim; ++c)
            att[(t * heads + hd) * dim + c] += s[j - first] / sum * v[(j * kvh + g) * dim + c];
      }
    auto o = linear(att, W(p + "self_attn.o_proj.weight"), heads * dim, hid, cfg.o_bias ? w.find(p + "self_attn.o_proj.bias") : nullptr);
    for (size_t i = 0; i < h.size(); ++i) h[i] += o[i];
    x = norm(h, W(p + "post_attention_layernorm.weight"));
    auto gate = linear(x, W(p + "mlp.gate_proj.weight"), hid, inter, nullptr);
    auto up = linear(x, W(p + "mlp.up_proj.weight"), hid, inter, nullptr);
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
    auto down = linear(gate, W(p + "mlp.down_proj.weight"), inter, hid, nullptr);
    for (size_t i = 0; i < h.size(); ++i) h[i] += down[i];
  }
  auto x = norm(h, W("model.norm.weight"));
  auto logits = linear(x, W(cfg.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"), hid,
                       size_t(cfg.vocab_size), nullptr);
  return std::vector<float>(logits.begin(), logits.end());
}

// Logits of every position of ids fed in chunks of `chunk` tokens (0: all at once).
std::vector<float> run_chunked(llama_model& model, const std::vector<int32_t>& ids, size_t chunk,
                               int64_t block_size = 16) {
  auto cache = model.make_kv_cache_for_tokens(int64_t(ids.size()), block_size);
  sequence_runner runner(model, *cache);
  size_t step = chunk == 0 ? ids.size() : chunk;
  std::vector<float> all;
  for (size_t i = 0; i < ids.size(); i += step) {
    auto part = runner.feed(std::span(ids).subspan(i, std::min(step, ids.size() - i)), true);
    REQUIRE(part.has_value());
    all.insert(all.end(), part->begin(), part->end());
  }
  REQUIRE(runner.size() == int64_t(ids.size()));
  return all;
}

}  // namespace

TEST_CASE("the forward pass matches a dense reference for every model variant") {
  auto be = kernels::make_cpu_backend(2);
  struct variant { const char* name; bool qkv_bias, o_bias, tied; int64_t kv_heads, window; config::rope_scaling_type rope; };
  std::vector<variant> variants = {
      {"llama GQA untied", false, false, false, 2, 0, config::rope_scaling_type::none},
      {"llama MHA tied", false, false, true, 4, 0, config::rope_scaling_type::none},
      {"qwen2 biases", true, false, false, 1, 0, config::rope_scaling_type::none},
      {"llama attention_bias", true, true, true, 2, 0, config::rope_scaling_type::none},
      {"mistral sliding window", false, false, false, 2, 5, config::rope_scaling_type::none},
      {"llama3 rope", false, false, true, 2, 0, config::rope_scaling_type::llama3},
      {"linear rope", false, false, false, 4, 0, config::rope_scaling_type::linear},
  };
  for (const auto& v : variants) {
    INFO(v.name);
    auto cfg = tiny_config();
    cfg.qkv_bias = v.qkv_bias;
    cfg.o_bias = v.o_bias;
    cfg.tie_word_embeddings = v.tied;
    cfg.num_key_value_heads = v.kv_heads;
    cfg.sliding_window = v.window;
    cfg.rope.type = v.rope;
    cfg.rope.factor = 4.0;
    cfg.rope.original_max_position_embeddings = 16;
    auto model = llama_model::random(cfg, 42, *be);
    REQUIRE(model.has_value());
    random_weights weights(cfg, 42);
    auto ids = random_ids(21, int32_t(cfg.vocab_size), 5);
    require_close(run_chunked(**model, ids, 0), reference_logits(cfg, weights, ids), 2e-4);
    require_close(run_chunked(**model, ids, 4, 4), reference_logits(cfg, weights, ids), 2e-4);
  }
}

// A small model (every weight at most 64K elements, heads narrower than 64) is computed the same way
// however its rows are grouped, so its logits are bitwise equal; a larger one goes through OpenBLAS,
// whose rounding depends on the number of rows, and agrees within float32 rounding.
TEST_CASE("chunked prefill, one-shot prefill and token-by-token agree, whatever the block size") {
  auto be = kernels::make_cpu_backend(2);
  auto cfg = tiny_config();
  auto model = llama_model::random(cfg, 7, *be);
  REQUIRE(model.has_value());
  auto ids = random_ids(53, int32_t(cfg.vocab_size), 11);
  auto one_shot = run_chunked(**model, ids, 0);
  for (size_t chunk : {1, 5, 16, 17}) {
    for (int64_t bs : {1, 3, 16, 32}) {
      INFO("chunk " << chunk << " block size " << bs);
      REQUIRE(run_chunked(**model, ids, chunk, bs) == one_shot);
    }
  }
}

TEST_CASE("a model too large for the exact path agrees across chunkings within rounding") {
  auto be = kernels::make_cpu_backend(2);
  auto cfg = tiny_config();
  cfg.hidden_size = 320;
  cfg.num_attention_heads = 5;
  cfg.num_key_value_heads = 5;
  cfg.head_dim = 64;
  cfg.intermediate_size = 400;
  cfg.vocab_size = 300;
  auto model = llama_model::random(cfg, 8, *be);
  REQUIRE(model.has_value());
  random_weights weights(cfg, 8);
  auto ids = random_ids(40, int32_t(cfg.vocab_size), 12);
  auto one_shot = run_chunked(**model, ids, 0);
  require_close(one_shot, reference_logits(cfg, weights, ids), 2e-4);
  for (size_t chunk : {1, 17}) {
    INFO("chunk " << chunk);
    require_close(run_chunked(**model, ids, chunk, 16), one_shot, 2e-5);
  }
}

TEST_CASE("a batch mixing prefill, chunked prefill over a prefix and decode equals each sequence alone") {
  auto be = kernels::make_cpu_backend(2);
  auto cfg = tiny_config();
  cfg.qkv_bias = true;
  auto model = llama_model::random(cfg, 3, *be);
  REQUIRE(model.has_value());
  const int64_t bs = 16;
  auto cache = (*model)->make_kv_cache(32, bs);
  // Each sequence: `cached` tokens already in the cache, then `fresh` new ones in the batch.
  struct seq { size_t cached, fresh; std::vector<int32_t> ids; };
  std::vector<seq> seqs = {{0, 20, {}}, {17, 1, {}}, {5, 12, {}}, {32, 1, {}}, {0, 1, {}}};
  std::vector<std::unique_ptr<sequence_runner>> runners;
  step_input in;
  in.query_start_loc = {0};
  in.max_blocks_per_seq = 4;
  std::vector<int32_t> extra_blocks;
  for (size_t s = 0; s < seqs.size(); ++s) {
    seqs[s].ids = random_ids(seqs[s].cached + seqs[s].fresh, int32_t(cfg.vocab_size), uint32_t(100 + s));
    runners.push_back(std::make_unique<sequence_runner>(**model, *cache));
    if (seqs[s].cached > 0)
      REQUIRE(runners[s]->feed(std::span(seqs[s].ids).first(seqs[s].cached)).has_value());
    std::vector<int32_t> blocks = runners[s]->blocks();
    size_t total = seqs[s].cached + seqs[s].fresh;
    while (blocks.size() * bs < total) {
      blocks.push_back(*cache->allocate_block());
      extra_blocks.push_back(blocks.back());
    }
    for (size_t p = seqs[s].cached; p < total; ++p) {
      in.token_ids.push_back(seqs[s].ids[p]);
      in.positions.push_back(int32_t(p));
      in.slot_mapping.push_back(int32_t(blocks[p / bs] * bs + p % bs));
      in.logits_indices.push_back(int32_t(in.token_ids.size() - 1));
    }
    in.query_start_loc.push_back(int32_t(in.token_ids.size()));
    in.seq_lens.push_back(int32_t(total));
    blocks.resize(size_t(in.max_blocks_per_seq), 0);
    in.block_tables.insert(in.block_tables.end(), blocks.begin(), blocks.end());
  }
  auto batched = (*model)->forward(in, *cache);
  REQUIRE(batched.has_value());
  const size_t vocab = size_t(cfg.vocab_size);
  size_t row = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    INFO("sequence " << s);
    auto alone = run_chunked(**model, seqs[s].ids, 0);
    std::vector<float> want(alone.begin() + ptrdiff_t(seqs[s].cached * vocab), alone.end());
    std::vector<float> got(batched->begin() + ptrdiff_t(row * vocab),
                           batched->begin() + ptrdiff_t((row + seqs[s].fresh) * vocab));
    REQUIRE(got == want);  // a small model: bitwise batch-invariant
    row += seqs[s].fresh;
  }
  for (int32_t b : extra_blocks) cache->free_block(b);
}

TEST_CASE("rope tables: plain, linear and llama3 scaling") {
  config::rope_scaling none;
  auto plain = rope_inv_freq(10000.0, 8, none);
  REQUIRE(plain.size() == 4);
  for (size_t i = 0; i < 4; ++i) REQUIRE(plain[i] == Approx(std::pow(10000.0, -double(2 * i) / 8.0)));
  config::rope_scaling linear{config::rope_scaling_type::linear, 4.0};
  auto lin = rope_inv_freq(10000.0, 8, linear);
  for (size_t i = 0; i < 4; ++i) REQUIRE(lin[i] == Approx(plain[i] / 4.0));
  // Llama 3.1: theta 500000, head_dim 128, factor 8, low 1, high 4, original context 8192.
  config::rope_scaling l3{config::rope_scaling_type::llama3, 8.0, 1.0, 4.0, 8192};
  auto base = rope_inv_freq(500000.0, 128, none), scaled = rope_inv_freq(500000.0, 128, l3);
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < 64; ++i) {
    double wavelen = 2 * M_PI / base[i];
    if (wavelen < 8192.0 / 4.0) {
      REQUIRE(scaled[i] == base[i]);
      ++kept;
    } else if (wavelen > 8192.0) {
      REQUIRE(scaled[i] == Approx(base[i] / 8.0));
      ++divided;
    } else {
      double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      REQUIRE(scaled[i] == Approx((1 - smooth) * base[i] / 8.0 + smooth * base[i]));
      REQUIRE((scaled[i] < base[i] && scaled[i] > base[i] / 8.0));
      ++blended;
    }
  }
  REQUIRE((kept > 0 && divided > 0 && blended > 0));
}

TEST_CASE("the runner refuses what does not fit and stays usable") {
  auto be = kernels::make_cpu_backend(1);
  auto cfg = tiny_config();
  cfg.max_position_embeddings = 40;
  auto model = llama_model::random(cfg, 1, *be);
  REQUIRE(model.has_value());
  auto cache = (*model)->make_kv_cache(2, 16);  // 32 tokens
  sequence_runner runner(**model, *cache);
  auto ids = random_ids(30, int32_t(cfg.vocab_size), 2);
  REQUIRE_FALSE(runner.feed({}).has_value());
  REQUIRE(runner.feed(std::span(ids).first(20)).has_value());
  REQUIRE(cache->num_free_blocks() == 0);
  auto full = runner.feed(ids);  // 50 tokens: past the context
  REQUIRE_FALSE(full.has_value());
  REQUIRE(full.error().message.find("context") != std::string::npos);
  auto no_room = runner.feed(std::span(ids).first(13));  // 33 tokens: past the cache
  REQUIRE_FALSE(no_room.has_value());
  REQUIRE(no_room.error().message.find("full") != std::string::npos);
  std::vector<int32_t> bad = {1, int32_t(cfg.vocab_size)};
  auto out_of_vocab = runner.feed(bad);
  REQUIRE_FALSE(out_of_vocab.has_value());
  REQUIRE(out_of_vocab.error().message.find("vocabulary") != std::string::npos);
  REQUIRE(runner.size() == 20);
  auto last = runner.feed(std::span(ids).subspan(20, 1));
  REQUIRE(last.has_value());
  REQUIRE(last->size() == size_t(cfg.vocab_size));
  auto whole = run_chunked(**model, std::vector<int32_t>(ids.begin(), ids.begin() + 21), 0);
  REQUIRE(*last == std::vector<float>(whole.end() - cfg.vocab_size, whole.end()));
  runner.reset();
  REQUIRE(runner.size() == 0);
  REQUIRE(cache->num_free_blocks() == 2);
}

TEST_CASE("inconsistent step inputs and model shapes give errors") {
  auto be = kernels::make_cpu_backend(1);
  auto cfg = tiny_config();
  auto bad = cfg;
  bad.num_key_value_heads = 3;
  REQUIRE_FALSE(llama_model::random(bad, 1, *be).has_value());
  bad = cfg;
  bad.head_dim = 7;
  REQUIRE_FALSE(llama_model::random(bad, 1, *be).has_value());
  auto model = llama_model::random(cfg, 1, *be);
  REQUIRE(model.has_value());
  auto cache = (*model)->make_kv_cache(2, 16);
  step_input in;
  in.token_ids = {1, 2};
  in.positions = {0, 1};
  in.slot_mapping = {0, 1};
  in.query_start_loc = {0, 2};
  in.seq_lens = {2};
  in.block_tables = {0};
  in.max_blocks_per_seq = 1;
  in.logits_indices = {1};
  REQUIRE((*model)->forward(in, *cache).has_value());
  auto wrong = in;
  wrong.slot_mapping = {0, 32};
  REQUIRE_FALSE((*model)->forward(wrong, *cache).has_value());
  wrong = in;
  wrong.block_tables = {2};
  REQUIRE_FALSE((*model)->forward(wrong, *cache).has_value());
  wrong = in;
  wrong.seq_lens = {17};
  REQUIRE_FALSE((*model)->forward(wrong, *cache).has_value());
  wrong = in;
  wrong.logits_indices = {2};
  REQUIRE_FALSE((*model)->forward(wrong, *cache).has_value());
  wrong = in;
  wrong.positions = {1, 2};
  REQUIRE_FALSE((*model)->forward(wrong, *cache).has_value());
  wrong = in;
  wrong.query_start_loc = {0, 1};
  REQUIRE_FALSE((*model)->forward(wrong, *cache).has_value());
  auto other = tiny_config();
  other.num_hidden_layers = 3;
  kv_cache foreign(*be, kv_cache_shape{3, 2, 16, 2, 8});
  REQUIRE_FALSE((*model)->forward(in, foreign).has_value());
}

TEST_CASE("the KV cache hands out every block once") {
  auto be = kernels::make_cpu_backend(1);
  kv_cache cache(*be, kv_cache_shape{2, 3, 4, 2, 8});
  REQUIRE(cache.keys(1).dims == kernels::shape{3, 4, 2, 8});
  REQUIRE(cache.nbytes() == 2 * 2 * 3 * 4 * 2 * 8 * sizeof(float));
  std::vector<int32_t> got;
  while (auto b = cache.allocate_block()) got.push_back(*b);
  REQUIRE(got == std::vector<int32_t>{0, 1, 2});
  REQUIRE(cache.num_free_blocks() == 0);
  cache.free_block(1);
  REQUIRE(cache.allocate_block() == std::optional<int32_t>(1));
}

TEST_CASE("load reads the bundled model and names what is missing") {
  auto be = kernels::make_cpu_backend(1);
  auto model = llama_model::load(TROUPE_DEFAULT_MODEL, *be);
  REQUIRE(model.has_value());
  REQUIRE((*model)->config().num_hidden_layers == 5);
  REQUIRE((*model)->config().tie_word_embeddings);
  auto cache = (*model)->make_kv_cache_for_tokens(33, 16);
  REQUIRE(cache->num_blocks() == 3);
  auto missing = llama_model::load("/nonexistent/troupe-model", *be);
  REQUIRE_FALSE(missing.has_value());
  REQUIRE(missing.error().message.find("/nonexistent/troupe-model") != std::string::npos);
  std::vector<int32_t> ids = {1, 403, 407};
  REQUIRE_FALSE(compute_prompt_logits("/nonexistent/troupe-model", ids).has_value());
  REQUIRE_FALSE(compute_prompt_logits(TROUPE_DEFAULT_MODEL, {}).has_value());
}

TEST_CASE("random weights depend on the seed alone") {
  auto be = kernels::make_cpu_backend(1);
  auto cfg = tiny_config();
  auto a = llama_model::random(cfg, 9, *be), b = llama_model::random(cfg, 9, *be), c = llama_model::random(cfg, 10, *be);
  REQUIRE((a.has_value() && b.has_value() && c.has_value()));
  auto ids = random_ids(6, int32_t(cfg.vocab_size), 4);
  auto la = run_chunked(**a, ids, 0), lb = run_chunked(**b, ids, 0), lc = run_chunked(**c, ids, 0);
  REQUIRE(la == lb);
  REQUIRE(la != lc);
  random_weights w(cfg, 9);
  REQUIRE(w.num_parameters() == 50 * 32 + 2 * (32 + 4 * 8 * 32 + 2 * 2 * 8 * 32 + 32 * 32 + 32 + 3 * 32 * 48) + 32 + 50 * 32);
  REQUIRE(w.find("lm_head.weight") != nullptr);
  REQUIRE(w.find("model.layers.0.self_attn.q_proj.bias") == nullptr);
}
