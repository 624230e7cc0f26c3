// BPE: merge table, the per-word merge loop (scan for short words, Hugging Face's heap for long ones),
// byte fallback and unknown tokens exactly as models::bpe::BPE::merge_word does them.
#include "engine/tokenizer/bpe_model.hpp"

#include <atomic>
#include <cstdio>
#include <queue>
#include <xxhash.h>

#include "engine/tokenizer/unicode.hpp"

namespace troupe::engine::tok {

namespace {

constexpr std::size_t cache_word_bytes = 48;     // longer words are rare and not cached
constexpr std::size_t cache_max_entries = 16384;  // then the cache starts over

std::atomic<uint64_t> next_generation{1};

// One thread's cache of word -> ids for the model it used last (a generation number, never reused).
struct word_cache {
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<int32_t>, string_hash, std::equal_to<>> map;
};

word_cache& cache_for(uint64_t generation) {
  thread_local word_cache cache;
  if (cache.owner != generation || cache.map.size() >= cache_max_entries) {
    cache.map.clear();
    cache.owner = generation;
  }
  return cache;
}

}  // namespace

void merge_table::reserve(std::size_t n) {
  std::size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  slots_.assign(cap, slot{});
  mask_ = cap - 1;
  size_ = 0;
}

void merge_table::put(int32_t a, int32_t b, int32_t rank, int32_t merged) {
  TROUPE_CHECK(!slots_.empty() && size_ * 2 < slots_.size() + 2);
  uint64_t key = pack(a, b);
  for (std::size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    slot& s = slots_[i];
    if (s.key == key || s.key == empty_key) {
      if (s.key == empty_key) ++size_;
      s = slot{key, rank, merged};
      return;
    }
  }
}

expected<void> bpe_model::set_merges(const std::vector<std::pair<std::string, std::string>>& pairs) {
  merges.reserve(pairs.size() + 1);
  std::size_t prefix_len = continuing_subword_prefix.size();
  std::string joined;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const auto& [a, b] = pairs[i];
    auto ia = lookup(a);
    auto ib = lookup(b);
    if (!ia || !ib)
      return make_error("merge ", i, " ('", a, "' '", b, "') uses a token missing from the vocabulary");
    if (b.size() < prefix_len)
      return make_error("merge ", i, ": '", b, "' lacks the continuing_subword_prefix");
    joined.assign(a);
    joined.append(b, prefix_len, std::string::npos);
    auto merged = lookup(joined);
    if (!merged) return make_error("merge ", i, ": the merged token '", joined, "' is not in the vocabulary");
    merges.put(*ia, *ib, static_cast<int32_t>(i), *merged);
  }
  return {};
}

void bpe_model::finish_setup() {
  generation_ = next_generation.fetch_add(1);
  std::size_t cap = 16;
  while (cap < vocab.size() * 2) cap <<= 1;
  index_.assign(cap, index_slot{});
  index_keys_.clear();
  index_keys_.reserve(vocab.size());
  for (const auto& [key, id] : vocab) {
    const uint64_t h = XXH3_64bits(key.data(), key.size());
    std::size_t i = h & (cap - 1);
    while (index_[i].entry >= 0) i = (i + 1) & (cap - 1);
    index_[i] = {h, static_cast<int32_t>(index_keys_.size())};
    index_keys_.emplace_back(key, id);
  }
  affixes_ = !continuing_subword_prefix.empty() || !end_of_word_suffix.empty();
  char_ids_.assign(0x10000, -1);
  for (const auto& [tok, id] : vocab) {
    std::size_t i = 0;
    if (tok.empty()) continue;
    char32_t c = unicode::next_char(tok, i);
    if (i == tok.size() && c < 0x10000) char_ids_[c] = id;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto id = lookup(name);
    byte_ids_[b] = id ? *id : -1;
  }
}

std::optional<int32_t> bpe_model::lookup(std::string_view s) const {
  if (index_.empty()) {  // during setup
    auto it = vocab.find(s);
    if (it == vocab.end()) return std::nullopt;
    return it->second;
  }
  const uint64_t h = XXH3_64bits(s.data(), s.size());
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    const index_slot& slot = index_[i];
    if (slot.entry < 0) return std::nullopt;
    if (slot.hash == h) {
      const auto& [key, id] = index_keys_[static_cast<std::size_t>(slot.entry)];
      if (key == s) return id;
    }
  }
}

expected<void> bpe_model::tokenize(std::string_view w, std::vector<int32_t>& out) const {
  if (ignore_merges) {
    if (auto id = lookup(w)) {
      out.push_back(*id);
      return {};
    }
  }
  word_cache* cache = nullptr;
  if (w.size() <= cache_word_bytes) {
    cache = &cache_for(generation_);
    if (auto it = cache->map.find(w); it != cache->map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return {};
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(w.size());
  int32_t pending_unk = -1;  // Hugging Face holds one unknown back to fuse it with the next
  std::string affixed;
  std::size_t i = 0;
  while (i < w.size()) {
    std::size_t b = i;
    char32_t c = unicode::next_char(w, i);
    bool first = b == 0, last = i == w.size();
    std::string_view s = w.substr(b, i - b);
    std::optional<int32_t> id;
    if (!affixes_) {
      if (c < 0x10000) {
        if (char_ids_[c] >= 0) id = char_ids_[c];
      } else {
        id = lookup(s);
      }
    } else {
      affixed.clear();
      if (!first) affixed += continuing_subword_prefix;
      affixed += s;
      if (last) affixed += end_of_word_suffix;
      s = affixed;
      id = lookup(s);
    }
    if (id) {
      if (pending_unk >= 0) symbols.push_back(pending_unk);
      pending_unk = -1;
      symbols.push_back(*id);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (char ch : s) all = all && byte_ids_[static_cast<unsigned char>(ch)] >= 0;
      if (all) {
        for (char ch : s) symbols.push_back(byte_ids_[static_cast<unsigned char>(ch)]);
        continue;
      }
    }
    if (!unk_id) return make_error("the character '", std::string(w.substr(b, i - b)),
                                   "' is not in the vocabulary and the model has no unk_token");
    if (pending_unk >= 0 && !fuse_unk) symbols.push_back(pending_unk);
    pending_unk = *unk_id;
  }
  if (pending_unk >= 0) symbols.push_back(pending_unk);
  if (symbols.size() <= 24) merge_scan(symbols);
  else merge_heap(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
  if (cache != nullptr) cache->map.emplace(std::string(w), std::move(symbols));
  return {};
}

void bpe_model::merge_scan(std::vector<int32_t>& sym) const {
  constexpr int32_t none = INT32_MAX;
  std::size_t n = sym.size();
  if (n < 2) return;
  TROUPE_CHECK(n <= 64);  // callers keep words this short; longer ones use merge_heap
  // cell k holds symbol k and the pair (symbol k, symbol k+1).
  struct cell {
    int32_t sym, rank, merged;
  } c[64];
  for (std::size_t k = 0; k < n; ++k) c[k].sym = sym[k];
  auto pair_at = [&](std::size_t k) {
    if (k + 1 >= n || !merges.get(c[k].sym, c[k + 1].sym, c[k].rank, c[k].merged)) c[k].rank = none;
  };
  for (std::size_t k = 0; k < n; ++k) pair_at(k);
  while (n > 1) {
    std::size_t best = 0;
    for (std::size_t k = 1; k + 1 < n; ++k)
      if (c[k].rank < c[best].rank) best = k;
    if (c[best].rank == none) break;
    c[best].sym = c[best].merged;
    for (std::size_t k = best + 1; k + 1 < n; ++k) c[k] = c[k + 1];
    --n;
    if (best > 0) pair_at(best - 1);
    pair_at(best);
  }
  sym.resize(n);
  for (std::size_t k = 0; k < n; ++k) sym[k] = c[k].sym;
}

void bpe_model::merge_heap(std::vector<int32_t>& sym) const {
  struct node {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  struct entry {
    int32_t rank, pos, merged;
    bool operator<(const entry& o) const {  // std::priority_queue pops the largest: invert
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  const auto n = static_cast<int32_t>(sym.size());
  std::vector<node> nodes(static_cast<std::size_t>(n));
  for (int32_t k = 0; k < n; ++k) nodes[k] = {sym[k], k - 1, k + 1 < n ? k + 1 : -1, true};
  std::priority_queue<entry> queue;
  int32_t r = 0, m = 0;
  for (int32_t k = 0; k + 1 < n; ++k)
    if (merges.get(sym[k], sym[k + 1], r, m)) queue.push({r, k, m});
  while (!queue.empty()) {
    entry top = queue.top();
    queue.pop();
    node& cur = nodes[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    node& right = nodes[cur.next];
    if (!merges.get(cur.id, right.id, r, m) || m != top.merged) continue;  // a stale entry
    cur.id = top.merged;
    right.alive = false;
    cur.next = right.next;
    if (cur.next >= 0) nodes[cur.next].prev = top.pos;
    if (cur.prev >= 0 && merges.get(nodes[cur.prev].id, cur.id, r, m)) queue.push({r, cur.prev, m});
    if (cur.next >= 0 && merges.get(cur.id, nodes[cur.next].id, r, m)) queue.push({r, top.pos, m});
  }
  sym.clear();
  for (const auto& nd : nodes)
    if (nd.alive) sym.push_back(nd.id);
}

}  // namespace troupe::engine::tok
