// The shared, immutable tables behind engine::tokenizer (internal to engine/tokenizer).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/error.hpp"
#include "engine/tokenizer/added_vocabulary.hpp"
#include "engine/tokenizer/bpe_model.hpp"
#include "engine/tokenizer/decoder.hpp"
#include "engine/tokenizer/normalizer.hpp"
#include "engine/tokenizer/pre_tokenizer.hpp"

namespace troupe::engine::tok {

/// One item of a TemplateProcessing template: a special token's ids, or the sequence itself.
struct template_item {
  bool is_sequence = false;
  std::vector<int32_t> ids;
};

/// Everything a tokenizer.json describes, ready to run.
struct tokenizer_impl {
  bpe_model model;
  std::optional<normalizer> norm;
  std::optional<pre_tokenizer> pre;
  std::optional<decoder> dec;
  std::vector<template_item> single_template;  ///< empty: add_special_tokens adds nothing

  std::vector<added_token> added;
  std::vector<std::string> added_text;  ///< what decoding shows (normalized tokens: normalised content)
  std::unordered_map<int32_t, std::size_t> added_by_id;
  string_map added_by_content;
  std::unordered_set<std::string> special_contents;
  added_matcher raw_matcher;         ///< tokens with normalized = false, matched in the raw text
  added_matcher normalized_matcher;  ///< tokens with normalized = true, matched after normalising
  int32_t vocab_size = 0;
  bool has_byte_fallback_decoder = false;  ///< a ByteFallback decoder joins <0xXX> runs

  /// Registers the added tokens (after model and normaliser are set).
  void set_added_tokens(std::vector<added_token> tokens);
  /// The token string of an id for decoding (added tokens first), or nullptr.
  const std::string* token_of(int32_t id) const;
  /// Appends the model ids of a non-added stretch of raw text.
  expected<void> encode_text(std::string_view raw, bool at_start, std::vector<int32_t>& out) const;
};

/// Parses tokenizer.json text into an impl; errors say what is unsupported or malformed.
expected<tokenizer_impl*> parse_tokenizer_json(std::string_view json);

}  // namespace troupe::engine::tok
