// Normalisers of tokenizer.json (NFC/NFD/NFKC/NFKD, Prepend, Replace, Sequence) applied to plain text.
#pragma once

#include <string>
#include <vector>

namespace troupe::engine::tok {

/// One normaliser of tokenizer.json; a sequence holds its children in order.
struct normalizer {
  enum class kind { nfc, nfd, nfkc, nfkd, prepend, replace, sequence };
  kind type = kind::sequence;
  std::string pattern;  ///< prepend: the text to prepend; replace: the literal to find
  std::string content;  ///< replace: the replacement
  std::vector<normalizer> children;

  /// Normalises one piece of (valid UTF-8) text as Hugging Face does.
  std::string apply(std::string s) const;
};

}  // namespace troupe::engine::tok
