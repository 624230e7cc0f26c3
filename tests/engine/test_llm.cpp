// engine::llm on the bundled model: batched outputs equal one-at-a-time generation (greedy and
// seeded), n samples share prompt blocks, stop strings and stop ids, rejections, forced collisions.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "engine/core/llm.hpp"
#include "engine/generation/generate.hpp"
#include "engine/model/sequence_runner.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "tests/engine/bundled_model.hpp"

using namespace troupe;
using namespace troupe::engine;
using ids = std::vector<int32_t>;
using testing::alone;
using testing::the;

namespace {

ids encode(const std::string& text) {
  auto e = the().tok->encode(text);
  REQUIRE(e.has_value());
  return *e;
}

llm_request make(const std::string& prompt, int64_t max_tokens, float temperature = 0.0f,
                 std::optional<uint64_t> seed = std::nullopt) {
  llm_request r;
  r.prompt_ids = encode(prompt);
  r.params.max_tokens = max_tokens;
  r.params.sampling.temperature = temperature;
  r.params.sampling.seed = seed;
  return r;
}

std::unique_ptr<llm> engine_with(llm_options o, block_hash_fn hash = xxh3_block_hash) {
  auto e = llm::create(*the().model, *the().tok, o, std::move(hash));
  REQUIRE(e.has_value());
  return std::move(*e);
}

const std::vector<std::string>& prompts = testing::story_prompts();

void require_same(const llm_sample& got, const generate_result& want) {
  REQUIRE(got.output_ids == want.output_ids);
  REQUIRE(got.text == want.text);
  REQUIRE(got.finish_reason == want.finish_reason);
}

}  // namespace

TEST_CASE("greedy outputs of a batch with chunked prefill equal each prompt alone") {
  llm_options o;
  o.kv_cache_blocks = 70;         // 560 tokens: the long ones preempt each other
  o.admission_reserve = 0;        // (admitted while they fit now)
  o.max_num_batched_tokens = 16;  // long prompts take several steps
  o.block_size = 8;
  auto e = engine_with(o);
  std::vector<llm_request> reqs;
  for (const auto& p : prompts) reqs.push_back(make(p, 60));
  reqs[1].params.max_tokens = 300;  // two long ones: together more than the cache holds
  reqs[3].params.max_tokens = 300;
  auto outs = e->generate(reqs);
  REQUIRE(outs.size() == reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO("prompt " << i);
    REQUIRE(outs[i].error.empty());
    REQUIRE(outs[i].prompt_ids == reqs[i].prompt_ids);
    REQUIRE(outs[i].samples.size() == 1);
    require_same(outs[i].samples[0], alone(reqs[i].prompt_ids, reqs[i].params));
  }
  REQUIRE(e->engine_scheduler().stats().preemptions > 0);
  REQUIRE(e->engine_scheduler().kv().stats().used_blocks == 0);
  REQUIRE(e->steps() < 2 * 300);  // batched: far fewer steps than the 840 tokens generated
}

TEST_CASE("a seeded sampled request gives the same tokens alone, in a batch, and through generate") {
  auto e = engine_with({});
  llm_request r = make(prompts[3], 50, 0.9f, 1234);
  r.params.sampling.top_k = 40;
  auto solo = e->generate(std::span<const llm_request>(&r, 1));
  std::vector<llm_request> batch;
  for (const auto& p : prompts) batch.push_back(make(p, 30, 1.0f, 99));
  batch.insert(batch.begin() + 2, r);
  auto many = e->generate(batch);
  REQUIRE(solo[0].samples[0].output_ids == many[2].samples[0].output_ids);
  require_same(solo[0].samples[0], alone(r.prompt_ids, r.params));
}

TEST_CASE("n samples share the prompt's full blocks and differ by seed") {
  llm_options o;
  o.block_size = 8;
  auto e = engine_with(o);
  llm_request r = make(prompts[1], 20, 1.0f, 5);
  const int32_t full_blocks = int32_t(r.prompt_ids.size() - 1) / 8;
  REQUIRE(full_blocks >= 2);
  r.params.n = 3;
  auto outs = e->generate(std::span<const llm_request>(&r, 1));
  REQUIRE(outs[0].samples.size() == 3);
  const auto s = e->engine_scheduler().kv().stats();
  REQUIRE(s.prefix_hits == 2 * full_blocks * 8);
  for (int c = 0; c < 3; ++c) {
    request_params p = r.params;
    p.sampling.seed = 5 + c;
    require_same(outs[0].samples[size_t(c)], alone(r.prompt_ids, p));
  }
  REQUIRE(outs[0].samples[0].output_ids != outs[0].samples[1].output_ids);
}

TEST_CASE("a stop string across token boundaries ends the text before it") {
  auto e = engine_with({});
  llm_request r = make(prompts[0], 60);
  const auto ref = alone(r.prompt_ids, r.params);
  // The text after each output token; pick a stop string that straddles two tokens.
  std::vector<std::string> upto;
  for (size_t k = 1; k <= ref.output_ids.size(); ++k)
    upto.push_back(the().tok->decode(std::span<const int32_t>(ref.output_ids.data(), k)));
  size_t k = 5;
  while (upto[k].size() - upto[k - 1].size() < 3) ++k;
  const size_t boundary = upto[k - 1].size();
  const std::string stop = ref.text.substr(boundary - 2, 4);
  const size_t at = ref.text.find(stop);
  size_t tokens_needed = 0;
  while (upto[tokens_needed].find(stop) == std::string::npos) ++tokens_needed;
  r.params.stop = {"never appears", stop};
  auto out = e->generate(std::span<const llm_request>(&r, 1))[0].samples[0];
  REQUIRE(out.text == ref.text.substr(0, at));
  REQUIRE(out.finish_reason == "stop");
  REQUIRE(out.stop_reason == stop);
  REQUIRE(out.output_ids == ids(ref.output_ids.begin(), ref.output_ids.begin() + ptrdiff_t(tokens_needed + 1)));
}

TEST_CASE("a stop token id ends the output before it") {
  auto e = engine_with({});
  llm_request r = make(prompts[2], 40);
  const auto ref = alone(r.prompt_ids, r.params);
  const int32_t stop = ref.output_ids[6];
  const auto first = std::find(ref.output_ids.begin(), ref.output_ids.end(), stop);
  r.params.stop_token_ids = {stop};
  auto out = e->generate(std::span<const llm_request>(&r, 1))[0].samples[0];
  REQUIRE(out.output_ids == ids(ref.output_ids.begin(), first));
  REQUIRE(out.finish_reason == "stop");
  REQUIRE(out.stop_reason == std::to_string(stop));
}

TEST_CASE("bad inputs are rejected with a reason while the others run") {
  llm_options o;
  o.kv_cache_blocks = 8;
  o.block_size = 16;
  auto e = engine_with(o);
  std::vector<llm_request> reqs(5);
  reqs[0] = make(prompts[0], 5);
  reqs[1].prompt_ids = ids(200, 7);  // 200 tokens: more than 8 blocks of 16 hold
  reqs[2].prompt_ids = {1, 5000};
  reqs[3] = make(prompts[0], 5);
  reqs[3].params.n = 0;
  reqs[4] = make(prompts[0], 5);
  reqs[4].params.sampling.top_p = 0.0f;
  auto outs = e->generate(reqs);
  REQUIRE(outs[0].error.empty());
  REQUIRE(outs[0].samples[0].output_ids.size() == 5);
  REQUIRE(outs[1].error == "the prompt has 200 tokens but the whole KV cache holds only 128 (8 blocks of 16)");
  REQUIRE(outs[2].error == "prompt token id 5000 is outside the vocabulary (size 512)");
  REQUIRE(outs[3].error == "n must be within [1, 128], got 0");
  REQUIRE_FALSE(outs[4].error.empty());
  for (size_t i = 1; i < outs.size(); ++i) REQUIRE(outs[i].samples.empty());

  o.max_model_len = 1000;
  auto too_long = llm::create(*the().model, *the().tok, o);
  REQUIRE_FALSE(too_long);
  REQUIRE(too_long.error().message ==
          "max_model_len 1000 exceeds the model's context of 512 tokens (max_position_embeddings)");
  llm_options zero_seqs;
  zero_seqs.max_num_seqs = 0;
  REQUIRE(llm::create(*the().model, *the().tok, zero_seqs).error().message == "max_num_seqs must be positive, got 0");
  llm_options zero_block;
  zero_block.block_size = 0;
  REQUIRE(llm::create(*the().model, *the().tok, zero_block).error().message == "block_size must be positive, got 0");
  llm_options defaults;  // 0 blocks: room for max_num_seqs full-length sequences, capped at 256 MiB
  REQUIRE(engine_with(defaults)->options().num_blocks == 256 * 512 / 16);
}

TEST_CASE("a hash that always collides still gives every prompt its own outputs") {
  llm_options o;
  o.block_size = 4;
  o.max_num_batched_tokens = 32;
  auto e = engine_with(o, [](uint64_t, std::span<const int32_t>, std::span<const int64_t>) { return uint64_t{3}; });
  std::vector<llm_request> reqs;
  for (const auto& p : prompts) reqs.push_back(make(p, 24));
  for (const auto& p : prompts) reqs.push_back(make(p + " The end.", 24));  // shared prefixes
  auto outs = e->generate(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i);
    require_same(outs[i].samples[0], alone(reqs[i].prompt_ids, reqs[i].params));
  }
  REQUIRE(e->engine_scheduler().kv().stats().prefix_hits > 0);
}

TEST_CASE("output processor: streamed pieces add up to the text, held back only while a stop could start") {
  const tokenizer& tok = *the().tok;
  const auto ref = alone(encode(prompts[1]), [] {
    request_params p;
    p.max_tokens = 80;
    p.sampling.temperature = 0.0f;
    return p;
  }());
  output_processor texts(tok);
  texts.add(1, {"zzz"});  // never matches: at most two bytes held back
  incremental_detokenizer plain(tok);  // what is final without stop strings
  std::string streamed, final_text;
  bool held_some = false;
  for (size_t i = 0; i < ref.output_ids.size(); ++i) {
    const bool last = i + 1 == ref.output_ids.size();
    auto d = texts.push(1, std::span<const int32_t>(&ref.output_ids[i], 1), last);
    REQUIRE_FALSE(d.stopped);
    streamed += d.text;
    final_text += plain.push(ref.output_ids[i]);
    if (!last) {
      REQUIRE(final_text.compare(0, streamed.size(), streamed) == 0);
      REQUIRE(final_text.size() - streamed.size() <= 2);
      held_some = held_some || final_text.size() > streamed.size();
    }
  }
  REQUIRE(held_some);
  REQUIRE(streamed == ref.text);
  REQUIRE(texts.size() == 0);
}

TEST_CASE("output processor: the earliest stop string wins and text is cut at UTF-8 boundaries") {
  const tokenizer& tok = *the().tok;
  output_processor texts(tok);
  const ids words = encode("the cat sat on the mat");
  texts.add(7, {"mat", "sat"});
  auto d = texts.push(7, words, false);
  REQUIRE(d.stopped);
  REQUIRE(d.stop_string == "sat");
  REQUIRE(d.text == tok.decode(words).substr(0, tok.decode(words).find("sat")));
  REQUIRE(texts.size() == 0);
  REQUIRE(texts.push(7, words, false).text.empty());  // forgotten after the stop

  const ids accented = encode("\xC3\xA9" "a");  // "éa": a two-byte character first
  REQUIRE(tok.decode(accented).find("\xC3\xA9" "a") != std::string::npos);
  texts.add(8, {"xyz"});
  std::string seen;
  for (int32_t t : accented) {
    auto piece = texts.push(8, std::span<const int32_t>(&t, 1), false);
    seen += piece.text;
    // Never half a character: no piece ends on a lead byte or starts with a continuation byte.
    if (!piece.text.empty()) {
      REQUIRE((static_cast<unsigned char>(piece.text.front()) & 0xC0) != 0x80);
      REQUIRE((static_cast<unsigned char>(piece.text.back()) & 0xC0) != 0xC0);
    }
  }
  seen += texts.push(8, {}, true).text;
  REQUIRE(seen == tok.decode(accented));
}

TEST_CASE("logprobs of sampled and prompt tokens match the model's own, through chunks and preemption") {
  llm_options o;
  o.block_size = 4;
  o.kv_cache_blocks = 20;  // 80 tokens: the two requests below preempt each other
  o.admission_reserve = 0;
  o.max_num_batched_tokens = 8;
  auto e = engine_with(o);
  std::vector<llm_request> reqs = {make(prompts[1], 30), make(prompts[3], 30)};
  reqs[0].params.logprobs = 3;
  reqs[0].params.prompt_logprobs = 2;
  reqs[1].params.prompt_logprobs = 0;
  auto outs = e->generate(reqs);
  REQUIRE(e->engine_scheduler().stats().preemptions > 0);
  for (size_t r = 0; r < reqs.size(); ++r) {
    INFO("request " << r);
    const auto& out = outs[r];
    const ids& prompt = reqs[r].prompt_ids;
    const ids& output = out.samples[0].output_ids;
    REQUIRE(output == alone(prompt, reqs[r].params).output_ids);
    ids all = prompt;
    all.insert(all.end(), output.begin(), output.end());
    auto logits = compute_prompt_logits(TROUPE_DEFAULT_MODEL, all);
    REQUIRE(logits.has_value());
    const size_t vocab = 512;
    auto row = [&](size_t p) { return std::span<const float>(logits->data() + p * vocab, vocab); };
    REQUIRE(out.prompt_logprobs.size() == prompt.size() - 1);
    for (size_t k = 0; k + 1 < prompt.size(); ++k) {
      const auto want = compute_logprobs(row(k), prompt[k + 1], reqs[r].params.prompt_logprobs);
      const auto& got = out.prompt_logprobs[k];
      REQUIRE(got.chosen.token == prompt[k + 1]);
      REQUIRE(got.chosen.logprob == Approx(want.chosen.logprob).margin(1e-4));
      REQUIRE(got.rank == want.rank);
      REQUIRE(got.top.size() == size_t(reqs[r].params.prompt_logprobs));
      for (size_t t = 0; t < got.top.size(); ++t) REQUIRE(got.top[t].token == want.top[t].token);
    }
    if (reqs[r].params.logprobs < 0) {
      REQUIRE(out.samples[0].logprobs.empty());
      continue;
    }
    REQUIRE(out.samples[0].logprobs.size() == output.size());
    for (size_t k = 0; k < output.size(); ++k) {
      const auto& got = out.samples[0].logprobs[k];
      const auto want = compute_logprobs(row(prompt.size() - 1 + k), output[k], 3);
      REQUIRE(got.chosen.token == output[k]);
      REQUIRE(got.rank == 1);  // greedy
      REQUIRE(got.chosen.logprob == Approx(want.chosen.logprob).margin(1e-4));
      REQUIRE(got.top.size() == 3);
      REQUIRE(got.top[0].token == output[k]);
    }
  }
  llm_request bad = make(prompts[0], 4);
  bad.params.logprobs = 21;
  REQUIRE(e->generate(std::span<const llm_request>(&bad, 1))[0].error ==
          "logprobs must be within [0, 20] (or -1: none), got 21");
}

TEST_CASE("the model runner's step inputs: positions, slots, offsets, block tables, logits rows") {
  scheduler_options o;
  o.num_blocks = 8;
  o.block_size = 4;
  o.max_num_batched_tokens = 10;
  o.max_model_len = 512;
  o.admission_reserve = 0;
  scheduler s(o);
  model_runner runner(*the().model, 8, 4);
  request_params p;
  p.sampling.temperature = 0.0f;
  REQUIRE(s.add_request(request(1, ids{1, 10, 11, 12, 13, 14}, p)));
  REQUIRE(s.add_request(request(2, ids{1, 20, 21, 22, 23, 24, 25}, p)));

  auto out = s.schedule();
  auto res = runner.execute(out);
  REQUIRE(res.has_value());
  const step_input& in = runner.last_input();
  REQUIRE(in.token_ids == ids{1, 10, 11, 12, 13, 14, 1, 20, 21, 22});
  REQUIRE(in.positions == ids{0, 1, 2, 3, 4, 5, 0, 1, 2, 3});
  REQUIRE(in.slot_mapping == ids{0, 1, 2, 3, 4, 5, 8, 9, 10, 11});
  REQUIRE(in.query_start_loc == ids{0, 6, 10});
  REQUIRE(in.seq_lens == ids{6, 4});
  REQUIRE(in.max_blocks_per_seq == 2);
  REQUIRE(in.block_tables == ids{0, 1, 2, 0});
  REQUIRE(in.logits_indices == ids{5});
  REQUIRE(res->sampled[1] == -1);
  const int32_t first = res->sampled[0];
  REQUIRE(first == argmax(std::span<const float>(
                       compute_prompt_logits(TROUPE_DEFAULT_MODEL, ids{1, 10, 11, 12, 13, 14})->data() + 5 * 512, 512)));
  s.update_from_output(out, res->sampled);

  out = s.schedule();  // 1 decodes its token; 2 finishes its prompt in a new block
  res = runner.execute(out);
  REQUIRE(res.has_value());
  REQUIRE(runner.last_input().token_ids == ids{first, 23, 24, 25});
  REQUIRE(runner.last_input().positions == ids{6, 4, 5, 6});
  REQUIRE(runner.last_input().slot_mapping == ids{6, 12, 13, 14});
  REQUIRE(runner.last_input().query_start_loc == ids{0, 1, 4});
  REQUIRE(runner.last_input().seq_lens == ids{7, 7});
  REQUIRE(runner.last_input().block_tables == ids{0, 1, 2, 3});
  REQUIRE(runner.last_input().logits_indices == ids{0, 3});
  REQUIRE(res->sampled[0] >= 0);
  REQUIRE(res->sampled[1] >= 0);
}

TEST_CASE("the step observer sees each step the model ran, with its sizes, and nothing once cleared") {
  llm_options o;
  o.kv_cache_blocks = 70;
  o.admission_reserve = 0;
  o.max_num_batched_tokens = 16;  // prompts in chunks, beside decode rows
  o.block_size = 8;
  o.steps_in_flight = 2;
  auto e = engine_with(o);
  std::vector<llm_request> reqs;
  for (const auto& p : prompts) reqs.push_back(make(p, 20));
  uint64_t seen = 0, tokens = 0;
  bool chunked = false, mixed = false;
  e->set_step_observer([&](const schedule_output& step) {
    ++seen;
    tokens += uint64_t(step.total_num_scheduled_tokens);
    REQUIRE(!step.empty());
    REQUIRE(step.new_requests.size() + step.cached_requests.size() == step.scheduled.size());
    int32_t sum = 0, decodes = 0;
    for (const auto& r : step.scheduled) {
      sum += r.num_tokens;
      decodes += r.num_tokens == 1 ? 1 : 0;
    }
    REQUIRE(sum == step.total_num_scheduled_tokens);
    chunked = chunked || step.total_num_scheduled_tokens == o.max_num_batched_tokens;
    mixed = mixed || (decodes > 0 && decodes < int32_t(step.scheduled.size()));
  });
  const uint64_t steps_before = e->steps(), tokens_before = e->computed_tokens();
  auto outs = e->generate(reqs);
  for (const auto& out : outs) REQUIRE(out.error.empty());
  REQUIRE(seen == e->steps() - steps_before);
  REQUIRE(tokens == e->computed_tokens() - tokens_before);
  REQUIRE(chunked);
  REQUIRE(mixed);
  e->set_step_observer(nullptr);
  const uint64_t before_more = e->steps();
  e->generate(std::vector<llm_request>{make(prompts[1], 4)});
  REQUIRE(e->steps() > before_more);
  REQUIRE(seen == before_more - steps_before);
}
