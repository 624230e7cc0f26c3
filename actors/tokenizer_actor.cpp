// Tokenizer actor: encodes text with the shared (immutable, thread-safe) tokenizer.
#include "actors/tokenizer_actor.hpp"

#include <string>

#include "actors/shared.hpp"

namespace troupe::actors {

namespace {

struct tokenizer_state {
  runtime_shared* shared = nullptr;
  size_t index = 0;
  std::atomic<int64_t>* depth = nullptr;
};

tokenizer_actor::behavior_type tokenizer_fn(tokenizer_actor::stateful_pointer<tokenizer_state> self,
                                            runtime_shared* shared, size_t index) {
  self->state.shared = shared;
  self->state.index = index;
  self->state.depth = shared->metrics.add_mailbox("tokenizer-" + std::to_string(index));
  self->attach_functor([shared] { shared->actor_ended(); });
  return {
      [self](tokenize_atom, const std::string& text, bool add_special) {
        auto& st = self->state;
        st.depth->store(int64_t(self->mailbox().size()));
        tokenize_reply reply;
        auto ids = st.shared->tok.encode(text, add_special);
        if (ids)
          reply.ids = std::move(*ids);
        else
          reply.error = ids.error().message;
        st.shared->tokenizer_load[st.index].fetch_sub(1);
        return reply;
      },
  };
}

}  // namespace

tokenizer_actor spawn_tokenizer(caf::actor_system& sys, runtime_shared& shared, size_t index) {
  shared.actor_started();
  return sys.spawn(tokenizer_fn, &shared, index);
}

}  // namespace troupe::actors
