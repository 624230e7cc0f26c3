// embed: the troupe runtime inside an application's own CAF actor system, no HTTP. Submits two
// requests, prints the first one's text as it streams in and cancels the second after a few tokens.
//
//   example_embed [MODEL_DIR]
#include <caf/all.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include "actors/messages.hpp"
#include "actors/runtime.hpp"

using namespace troupe;

int main(int argc, char** argv) {
  // The application's actor system; the runtime's messages must be registered in it.
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::troupe>();
  caf::actor_system sys{cfg};

  runtime_options options;
  options.model_dir = argc > 1 ? argv[1] : TROUPE_DEFAULT_MODEL;
  options.engine.kv_cache_blocks = 256;
  options.cpu_threads = 1;
  options.system = &sys;
  auto rt = runtime::start(options);
  if (!rt) {
    std::fprintf(stderr, "cannot start the runtime: %s\n", rt.error().message.c_str());
    return 1;
  }

  submit_request story;
  story.prompt = "Once upon a time, there was a little girl named Lily.";
  story.params.max_tokens = 60;
  story.params.sampling.temperature = 0.0f;
  story.params.stop = {"\n"};
  auto first = (*rt)->submit(story);

  submit_request endless = story;
  endless.prompt = "The little bird";
  endless.params.max_tokens = 1000;
  endless.params.ignore_eos = true;
  endless.params.stop.clear();
  auto second = (*rt)->submit(endless);
  if (!first || !second) {
    std::fprintf(stderr, "submit failed: %s\n", (!first ? first : second).error().message.c_str());
    return 1;
  }

  std::printf("%s", story.prompt.c_str());
  while (!(*first)->done())
    if (auto ev = (*first)->next(std::chrono::milliseconds(100))) {
      std::printf("%s", ev->text.c_str());
      std::fflush(stdout);
      if (ev->finished) std::printf("\n[finished: %s %s]\n", ev->finish_reason.c_str(), ev->stop_reason.c_str());
    }

  int tokens = 0;
  while (!(*second)->done())
    if (auto ev = (*second)->next(std::chrono::milliseconds(100))) {
      tokens += int(ev->token_ids.size());
      if (tokens >= 5) (*second)->cancel();  // the client left: its KV blocks are freed at once
      if (ev->finished) std::printf("second request: %d tokens, then %s\n", tokens, ev->finish_reason.c_str());
    }

  const auto m = (*rt)->metrics();
  std::printf("kv blocks used %lld of %lld, generated %llu tokens\n", (long long)m.kv_blocks_used,
              (long long)m.kv_blocks_total, (unsigned long long)m.generation_tokens);
  rt->reset();  // stops the runtime's actors; the application's system lives on
  return 0;
}
