// The BPE model of tokenizer.json: vocabulary, ranked merges, byte fallback, unknown-token handling.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/error.hpp"

namespace troupe::engine::tok {

/// Hash for heterogeneous lookup of std::string keys by std::string_view.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

using string_map = std::unordered_map<std::string, int32_t, string_hash, std::equal_to<>>;

/// Open-addressing map from a pair of token ids to (merge rank, merged id).
class merge_table {
 public:
  void reserve(std::size_t n);
  /// Inserts or overwrites (a later duplicate merge wins, as in Hugging Face's HashMap).
  void put(int32_t a, int32_t b, int32_t rank, int32_t merged);
  /// The rank and merged id of (a, b), or false.
  bool get(int32_t a, int32_t b, int32_t& rank, int32_t& merged) const {
    if (slots_.empty()) return false;
    uint64_t key = pack(a, b);
    for (std::size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (s.key == key) {
        rank = s.rank;
        merged = s.merged;
        return true;
      }
      if (s.key == empty_key) return false;
    }
  }
  std::size_t size() const { return size_; }

 private:
  static constexpr uint64_t empty_key = ~uint64_t{0};
  struct slot {
    uint64_t key = empty_key;
    int32_t rank = 0;
    int32_t merged = 0;
  };
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static std::size_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<std::size_t>(k);
  }
  std::vector<slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

/// A byte-pair-encoding model as Hugging Face's `models::bpe::BPE`.
struct bpe_model {
  string_map vocab;
  std::vector<std::string> id_to_token;  ///< indexed by id; empty where the model has no token
  merge_table merges;
  std::optional<int32_t> unk_id;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;

  /// Builds the merge table from (left, right) strings; errors name a token missing from the vocabulary.
  expected<void> set_merges(const std::vector<std::pair<std::string, std::string>>& pairs);
  /// Precomputes per-character and byte-fallback lookups; call after vocab is complete.
  void finish_setup();

  /// Appends the ids of one pre-tokenised word (never empty) to out. Results for short words are kept in
  /// a per-thread cache (as Hugging Face keeps a shared one), so repeated words skip the merge loop.
  expected<void> tokenize(std::string_view w, std::vector<int32_t>& out) const;

  /// Applies all merges to symbols: the heap algorithm of Hugging Face (for long words).
  void merge_heap(std::vector<int32_t>& symbols) const;
  /// Applies all merges to symbols by repeated scans (same result; faster for short words).
  void merge_scan(std::vector<int32_t>& symbols) const;

 private:
  std::optional<int32_t> lookup(std::string_view s) const;
  // A flat open-addressing index over vocab (xxh3 hashes) for the hot path; built by finish_setup.
  struct index_slot {
    uint64_t hash = 0;
    int32_t entry = -1;  // into index_keys_, -1 when empty
  };
  std::vector<index_slot> index_;
  std::vector<std::pair<std::string_view, int32_t>> index_keys_;  // views of vocab's keys
  uint64_t generation_ = 0;  // names this model in the per-thread word caches
  std::vector<int32_t> char_ids_;  // codepoint < 0x10000 -> id of that one-character token, or -1
  std::array<int32_t, 256> byte_ids_{};  // <0xXX> tokens, -1 where missing
  bool affixes_ = false;
};

}  // namespace troupe::engine::tok
