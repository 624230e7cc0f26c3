// Hugging Face tokenizer.json tokenizers (byte-level and SentencePiece-style BPE) and streaming decoding.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.hpp"

namespace troupe::engine {

namespace tok {
struct tokenizer_impl;
}

/// A tokenizer read from tokenizer.json that encodes and decodes exactly as Hugging Face's `tokenizers`.
/// Cheap to copy (the tables are shared and immutable) and safe to use from several threads at once.
class tokenizer {
 public:
  /// Loads DIR/tokenizer.json (or the file itself); errors name the file and what is unsupported.
  static expected<tokenizer> load(const std::filesystem::path& dir_or_file);
  /// Builds a tokenizer from the text of a tokenizer.json; origin names it in errors.
  static expected<tokenizer> from_json(std::string_view json, const std::string& origin = "tokenizer.json");

  /// Encodes like HF `tokenizer.encode(text, add_special_tokens)`; invalid UTF-8 gives an error.
  expected<std::vector<int32_t>> encode(std::string_view text, bool add_special_tokens = true) const;
  /// Decodes like HF `decode(ids, skip_special_tokens)`; ids outside the vocabulary are skipped.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  /// Number of distinct tokens, added tokens included (HF `get_vocab_size(true)`).
  int32_t vocab_size() const;
  /// The id of a token string (added tokens first, then the model's vocabulary).
  std::optional<int32_t> token_to_id(std::string_view token) const;
  /// The token string of an id, or "" when there is none.
  std::string id_to_token(int32_t id) const;
  /// Whether id is an added token marked special.
  bool is_special(int32_t id) const;
  /// Whether id is a byte-fallback token such as <0x0A> that a ByteFallback decoder joins with others.
  bool is_byte_token(int32_t id) const;

 private:
  std::shared_ptr<const tok::tokenizer_impl> impl_;
};

/// Streaming detokeniser: push ids one by one, get text only once it is complete UTF-8;
/// the pieces concatenate to exactly decode(all ids).
class incremental_detokenizer {
 public:
  explicit incremental_detokenizer(const tokenizer& tok, bool skip_special = false);
  /// Adds one id; returns the text that became final (possibly empty).
  std::string push(int32_t id);
  /// Returns whatever text is still held back (e.g. an unfinished character); call once at the end.
  std::string finish();

 private:
  std::string emit(bool final);
  tokenizer tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;   // ids from prefix_ on
  std::size_t read_ = 0;       // ids_[0, read_) have been emitted; ids_[0] is context
  std::string prefix_text_;    // decode(ids_[0, read_))
  std::vector<int32_t> all_ids_;  // every id since the start, for an exact finish()
  std::string emitted_text_;      // everything returned so far
  std::size_t stalls_ = 0;        // pushes in a row whose text ended in an unfinished character
};

}  // namespace troupe::engine
