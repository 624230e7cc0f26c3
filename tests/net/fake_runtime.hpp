// A scripted troupe::runtime for the HTTP layer's tests: deterministic tokens at a set pace, errors on
// demand, and counters of running and cancelled requests (no model runs).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "actors/runtime.hpp"

namespace troupe::test {

/// Sample s's k-th token of a fake request: id 300 + k + s, text " t<k>".
class fake_stream : public request_stream {
 public:
  fake_stream(std::vector<int32_t> prompt, engine::request_params p, std::chrono::milliseconds pace,
              std::atomic<int64_t>& running, std::atomic<int64_t>& cancelled, std::string fail_message)
      : prompt_(std::move(prompt)), params_(std::move(p)), pace_(pace), running_(running),
        cancelled_(cancelled), fail_(std::move(fail_message)), emitted_(size_t(params_.n), 0),
        finished_(size_t(params_.n), false) {
    ++running_;
  }
  ~fake_stream() override {
    if (!counted_end_) --running_;
  }

  std::optional<stream_event> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    if (all_finished()) return std::nullopt;
    if (cancel_) return finish_one("abort");
    // The next token is due `pace` after the previous one; wait for it or for a cancel.
    const auto due = last_ + pace_;
    cv_.wait_until(lock, std::min(due, std::chrono::steady_clock::now() + timeout), [&] { return cancel_; });
    if (cancel_) return finish_one("abort");
    if (std::chrono::steady_clock::now() < due) return std::nullopt;
    last_ = std::chrono::steady_clock::now();
    const int32_t s = next_sample();
    stream_event ev;
    ev.sample = s;
    if (!fail_.empty()) {
      ev.finished = true;
      ev.finish_reason = "error";
      ev.stop_reason = fail_;
      mark_finished(s);
      return ev;
    }
    const int32_t k = emitted_[size_t(s)]++;
    ev.token_ids = {300 + k + s};
    ev.text = " t" + std::to_string(k);
    if (params_.logprobs >= 0) {
      engine::logprobs_entry e{{300 + k + s, -0.5f}, 1, {}};
      for (int32_t t = 0; t < params_.logprobs; ++t) e.top.push_back({300 + k + s + t, -0.5f - float(t)});
      ev.logprobs.push_back(e);
    }
    if (emitted_[size_t(s)] >= params_.max_tokens) {
      ev.finished = true;
      ev.finish_reason = "length";
      mark_finished(s);
    }
    return ev;
  }

  bool done() const override {
    std::lock_guard lock(mu_);
    return all_finished();
  }

  void cancel() override {
    {
      std::lock_guard lock(mu_);
      if (cancel_ || all_finished()) return;
      cancel_ = true;
      ++cancelled_;
    }
    cv_.notify_all();
  }

  std::vector<int32_t> prompt_ids() const override { return prompt_; }
  std::vector<engine::logprobs_entry> prompt_logprobs() const override {
    std::vector<engine::logprobs_entry> out;
    if (params_.prompt_logprobs < 0) return out;
    for (size_t i = 1; i < prompt_.size(); ++i) out.push_back({{prompt_[i], -1.0f}, 2, {}});
    return out;
  }

 private:
  bool all_finished() const {
    for (bool f : finished_)
      if (!f) return false;
    return true;
  }
  int32_t next_sample() {
    for (int32_t i = 0; i < params_.n; ++i) {
      const int32_t s = (turn_ + i) % params_.n;
      if (!finished_[size_t(s)]) {
        turn_ = s + 1;
        return s;
      }
    }
    return 0;
  }
  void mark_finished(int32_t s) {
    finished_[size_t(s)] = true;
    if (all_finished() && !counted_end_) {
      counted_end_ = true;
      --running_;
    }
  }
  stream_event finish_one(const char* reason) {
    stream_event ev;
    ev.sample = next_sample();
    ev.finished = true;
    ev.finish_reason = reason;
    mark_finished(ev.sample);
    return ev;
  }

  std::vector<int32_t> prompt_;
  engine::request_params params_;
  std::chrono::milliseconds pace_;
  std::atomic<int64_t>& running_;
  std::atomic<int64_t>& cancelled_;
  std::string fail_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  std::vector<int32_t> emitted_;
  std::vector<bool> finished_;
  int32_t turn_ = 0;
  bool cancel_ = false;
  bool counted_end_ = false;
};

/// The fake runtime over a real model folder's configuration and tokenizer.
class fake_runtime : public runtime {
 public:
  explicit fake_runtime(const std::string& model_dir, std::string chat_template = {})
      : config_(*config::load_model_config(model_dir)),
        settings_(*config::load_tokenizer_settings(model_dir)),
        tok_(*engine::tokenizer::load(model_dir)) {
    if (!chat_template.empty()) settings_.chat_template = std::move(chat_template);
  }

  expected<std::shared_ptr<request_stream>> submit(submit_request r) override {
    {
      std::lock_guard lock(mu_);
      last_request_ = r;
    }
    ++submitted;
    if (reject != errc::unspecified) return make_error_code(reject, reject_message);
    std::vector<int32_t> ids = r.prompt_ids;
    if (ids.empty()) {
      auto enc = tok_.encode(r.prompt, r.add_special_tokens);
      if (!enc) return make_error_code(errc::invalid_argument, enc.error().message);
      ids = std::move(*enc);
    }
    if (int64_t(ids.size()) >= max_len)
      return make_error_code(errc::invalid_argument, "the prompt has ", ids.size(), " tokens but max_model_len is ",
                             max_len);
    return std::shared_ptr<request_stream>(
        std::make_shared<fake_stream>(std::move(ids), r.params, pace, running, cancelled, fail_message));
  }
  bool ready() const override { return !draining_; }
  void drain(std::chrono::milliseconds) override { draining_ = true; }
  runtime_metrics metrics() const override {
    runtime_metrics m;
    m.requests_running = running.load();
    m.requests_finished["stop"] = 3;
    m.kv_blocks_total = 64;
    m.time_to_first_token = {{0.1, 1.0}, {2, 1, 0}, 0.5, 3};
    m.mailbox_depth["scheduler"] = 2;
    return m;
  }
  const config::model_config& model_config() const override { return config_; }
  const config::tokenizer_settings& tokenizer_settings() const override { return settings_; }
  const engine::tokenizer& tokenizer() const override { return tok_; }
  const std::string& served_model_name() const override { return name_; }
  int64_t max_model_len() const override { return max_len; }

  submit_request last_request() const {
    std::lock_guard lock(mu_);
    return last_request_;
  }

  std::chrono::milliseconds pace{1};
  errc reject = errc::unspecified;
  std::string reject_message = "rejected";
  std::string fail_message;  ///< non-empty: every sample fails with it
  int64_t max_len = 512;
  std::atomic<int64_t> running{0}, cancelled{0}, submitted{0};

 private:
  config::model_config config_;
  config::tokenizer_settings settings_;
  engine::tokenizer tok_;
  std::string name_ = "stories260k";
  std::atomic<bool> draining_{false};
  mutable std::mutex mu_;
  submit_request last_request_;
};

}  // namespace troupe::test
