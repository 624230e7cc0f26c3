// Decoders of tokenizer.json (ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence).
#pragma once

#include <string>
#include <vector>

namespace troupe::engine::tok {

/// One decoder; a sequence holds its children in order. Each maps a list of token strings to another
/// (Hugging Face's decode_chain); the final text is the concatenation.
struct decoder {
  enum class kind { byte_level, byte_fallback, fuse, strip, replace, metaspace, sequence };
  kind type = kind::sequence;
  std::string pattern;  ///< replace: literal to find; metaspace: the replacement character
  std::string content;  ///< replace: what replaces it; strip: the character to strip
  std::size_t strip_start = 0;
  std::size_t strip_stop = 0;
  bool prepend = true;  ///< metaspace: drop the replacement characters of the first token
  std::vector<decoder> children;

  /// Transforms tokens in place.
  void decode_chain(std::vector<std::string>& tokens) const;
};

/// Parses a byte-fallback token "<0xAB>"; -1 when the token is not one.
int byte_fallback_value(const std::string& token);

}  // namespace troupe::engine::tok
