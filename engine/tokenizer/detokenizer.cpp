// incremental_detokenizer: decodes a short window of recent ids (one context token or more before the new
// ones) and emits only text that later ids cannot change, so the pieces add up to the full decode.
#include "engine/tokenizer/tokenizer.hpp"

namespace troupe::engine {

namespace {

// Unfinished-character waits before the window is decoded only for clean ids (real text needs <= 3).
constexpr std::size_t max_quick_waits = 8;

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

incremental_detokenizer::incremental_detokenizer(const tokenizer& tok, bool skip_special)
    : tok_(tok), skip_special_(skip_special) {}

std::string incremental_detokenizer::push(int32_t id) {
  ids_.push_back(id);
  all_ids_.push_back(id);
  // A byte-fallback run may still turn into a character (or into U+FFFD per byte): wait for its end.
  // A token that decodes to nothing (skipped or unknown) does not end a run either.
  if (tok_.is_byte_token(id)) return {};
  if ((skip_special_ && tok_.is_special(id)) || tok_.id_to_token(id).empty()) return {};
  // After many ids in a row that left an unfinished character (model garbage), only an id whose own
  // text ends cleanly can end the wait: the cost per id stays constant instead of decoding an ever
  // longer window each time. finish() still returns everything.
  if (stalls_ > max_quick_waits) {
    std::string alone = tok_.decode(std::span<const int32_t>(&id, 1), skip_special_);
    if (alone.empty() || ends_with_replacement(alone)) return {};
  }
  return emit(false);
}

std::string incremental_detokenizer::finish() {
  // The rest of the full decode: exact even where the window's view of the text was not.
  std::string full = tok_.decode(all_ids_, skip_special_);
  std::string out;
  if (full.compare(0, emitted_text_.size(), emitted_text_) == 0)
    out = full.substr(emitted_text_.size());
  else
    out = emit(true);
  all_ids_.clear();
  emitted_text_.clear();
  stalls_ = 0;
  ids_.clear();
  read_ = 0;
  prefix_text_.clear();
  return out;
}

std::string incremental_detokenizer::emit(bool final) {
  std::string text = tok_.decode(ids_, skip_special_);
  if (text.compare(0, prefix_text_.size(), prefix_text_) != 0) return {};  // wait for more context
  if (!final && ends_with_replacement(text)) {
    ++stalls_;
    return {};
  }
  if (!final && text.size() <= prefix_text_.size()) return {};
  stalls_ = 0;
  std::string out = text.substr(prefix_text_.size());
  emitted_text_ += out;
  // The ids since the last emission become the context of the next window, unless they decode to
  // nothing: then a decoder's start-of-text rules (Strip, Metaspace) could reach the new text, so the
  // window keeps its older start.
  std::vector<int32_t> context(ids_.begin() + static_cast<std::ptrdiff_t>(read_), ids_.end());
  std::string context_text = tok_.decode(context, skip_special_);
  if (!context_text.empty() && read_ > 0) {
    ids_ = std::move(context);
    prefix_text_ = std::move(context_text);
  } else {
    prefix_text_ = std::move(text);
  }
  read_ = ids_.size();
  return out;
}

}  // namespace troupe::engine
