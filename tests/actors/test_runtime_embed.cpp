// In-process embedding: the runtime inside an application's own actor system gives the same
// outputs as with a private one, stops cleanly, and leaves the application's system usable.
#include "runtime_helpers.hpp"

#include <caf/all.hpp>

#include "actors/messages.hpp"

using namespace troupe;
using namespace troupe::test;

namespace {

std::vector<collected_sample> run_one(runtime& rt, const std::string& prompt) {
  submit_request r;
  r.prompt = prompt;
  r.params.max_tokens = 20;
  r.params.sampling.temperature = 0.7f;
  r.params.sampling.seed = 7;
  r.params.n = 2;
  auto s = rt.submit(r);
  if (!s) FAIL(s.error().message);
  return collect(**s, 2);
}

}  // namespace

TEST_CASE("the runtime runs inside an application's actor system", "[actors]") {
  std::vector<collected_sample> want;
  {
    auto rt = start(options_for(small_engine()));
    want = run_one(*rt, story_prompts()[3]);
  }
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::troupe>();
  caf::actor_system sys{cfg};
  {
    auto o = options_for(small_engine());
    o.system = &sys;
    auto rt = start(o);
    const auto got = run_one(*rt, story_prompts()[3]);
    for (size_t s = 0; s < 2; ++s) {
      CHECK(got[s].ids == want[s].ids);
      CHECK(got[s].text == want[s].text);
    }
    CHECK(got[0].ids != got[1].ids);  // two samples, two seeds
    // A stream left unread and uncancelled when the runtime stops ends with it.
    submit_request r;
    r.prompt = "Once upon a time";
    r.params.max_tokens = 500;
    r.params.ignore_eos = true;
    auto pending = rt->submit(r);
    REQUIRE(pending.has_value());
    rt.reset();
    const auto out = collect(**pending, 1);
    CHECK((out[0].finish_reason == "abort" || out[0].finish_reason == "length"));
    (*pending)->cancel();  // after shutdown: does nothing
  }
  // The application's system still works.
  auto echo = sys.spawn([]() -> caf::behavior { return {[](int32_t x) { return x + 1; }}; });
  caf::scoped_actor self{sys};
  int32_t answer = 0;
  self->request(echo, std::chrono::seconds(5), int32_t{41}).receive([&](int32_t x) { answer = x; }, [](caf::error&) {});
  CHECK(answer == 42);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}
