// Incremental detokenisation with stop strings matched over the text held back between tokens.
#include "engine/core/output_processor.hpp"

#include <algorithm>

namespace troupe::engine {

void output_processor::add(request_id id, std::vector<std::string> stop_strings, bool skip_special_tokens) {
  stop_strings.erase(std::remove(stop_strings.begin(), stop_strings.end(), std::string()), stop_strings.end());
  size_t hold = 0;
  for (const auto& s : stop_strings) hold = std::max(hold, s.size() - 1);
  states_.erase(id);
  states_.emplace(id, state{incremental_detokenizer(tok_, skip_special_tokens), std::move(stop_strings), hold, {}});
}

bool output_processor::match(state& st, delta& d) {
  size_t best = std::string::npos;
  const std::string* which = nullptr;
  for (const auto& s : st.stops) {
    const size_t at = st.pending.find(s);
    if (at < best) {
      best = at;
      which = &s;
    }
  }
  if (which == nullptr) return false;
  d.text += st.pending.substr(0, best);
  d.stopped = true;
  d.stop_string = *which;
  return true;
}

output_processor::delta output_processor::push(request_id id, std::span<const int32_t> tokens, bool finished) {
  delta d;
  auto it = states_.find(id);
  if (it == states_.end()) return d;
  state& st = it->second;
  for (int32_t t : tokens) {
    st.pending += st.detok.push(t);
    if (match(st, d)) {
      states_.erase(it);
      return d;
    }
  }
  if (finished) {
    st.pending += st.detok.finish();
    if (!match(st, d)) d.text += st.pending;
    states_.erase(it);
    return d;
  }
  // Return all but the last `hold` bytes (which may begin a stop string), cut at a UTF-8 boundary.
  if (st.pending.size() > st.hold) {
    size_t cut = st.pending.size() - st.hold;
    while (cut > 0 && (static_cast<unsigned char>(st.pending[cut]) & 0xC0) == 0x80) --cut;
    d.text += st.pending.substr(0, cut);
    st.pending.erase(0, cut);
  }
  return d;
}

}  // namespace troupe::engine
