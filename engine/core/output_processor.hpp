// Detokenises each request's new tokens and matches its stop strings across token boundaries.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/core/request.hpp"
#include "engine/tokenizer/tokenizer.hpp"

namespace troupe::engine {

/// Text for each request, kept apart from the scheduler: detokenising is per-request work that
/// belongs beside the client (the request actor, or the offline loop of engine::llm), and it keeps
/// schedule() + update_from_output() cheap. Text that could still become the start of a stop string
/// is held back; when a stop string appears, the text before it is final, the stop string is not
/// returned, and the caller finishes the request through scheduler::finish_request.
class output_processor {
 public:
  explicit output_processor(const tokenizer& tok) : tok_(tok) {}

  /// What new tokens added to a request's text.
  struct delta {
    std::string text;         ///< text that became final (complete UTF-8)
    bool stopped = false;     ///< a stop string matched: the request's text ends here
    std::string stop_string;  ///< which one
  };

  /// Starts following a request.
  void add(request_id id, std::vector<std::string> stop_strings, bool skip_special_tokens = false);
  /// Feeds a request's new tokens; `finished` releases the text still held back (the request ended
  /// for another reason) and forgets the request, as does a matched stop string.
  delta push(request_id id, std::span<const int32_t> tokens, bool finished);
  /// Forgets a request (aborted).
  void remove(request_id id) { states_.erase(id); }
  size_t size() const { return states_.size(); }

 private:
  struct state {
    incremental_detokenizer detok;
    std::vector<std::string> stops;
    size_t hold = 0;      // bytes to hold back: longest stop string - 1
    std::string pending;  // detokenised but not yet returned
  };
  static bool match(state& st, delta& d);

  tokenizer tok_;
  std::unordered_map<request_id, state> states_;
};

}  // namespace troupe::engine
