// Tokenizer files for the parity test: the four real ones, and variants of them that exercise the
// features the real files do not use (Metaspace, Digits, split behaviours, NFKC/NFD, lstrip/rstrip/single_word).
'use strict';

const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const mods = path.join(__dirname, 'node_modules', '@lenml');

/// The real tokenizer files: name -> path.
const real = {
  llama3: path.join(mods, 'tokenizer-llama3_1', 'models', 'tokenizer.json'),
  qwen3: path.join(mods, 'tokenizer-qwen3', 'models', 'tokenizer.json'),
  mistral: path.join(mods, 'tokenizer-llama2', 'models', 'tokenizer.json'),
  stories260k: path.join(root, 'models', 'stories260k', 'tokenizer.json'),
};

const load = (name) => JSON.parse(fs.readFileSync(real[name], 'utf8'));
const llama3Regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function setFlags(tok, content, flags) {
  const t = tok.added_tokens.find((a) => a.content === content);
  Object.assign(t, flags);
}

/// Synthetic variants: name -> tokenizer object (written next to the corpus by the test).
function synthetic() {
  const v = {};
  // Llama 3 vocabulary with GPT-2 style ByteLevel pre-tokenisation and added-token options.
  let t = load('llama3');
  t.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  t.post_processor = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  setFlags(t, '<|reserved_special_token_0|>', { lstrip: true });
  setFlags(t, '<|reserved_special_token_1|>', { rstrip: true });
  setFlags(t, '<|reserved_special_token_2|>', { single_word: true });
  setFlags(t, '<|reserved_special_token_3|>', { lstrip: true, rstrip: true });
  t.added_tokens.push({ id: 128256, content: 'hello world', single_word: false, lstrip: false, rstrip: false,
    normalized: true, special: false });
  v['llama3-gpt2-added'] = t;
  // Digits and every split behaviour in front of ByteLevel.
  t = load('llama3');
  t.model.ignore_merges = false;
  t.pre_tokenizer = { type: 'Sequence', pretokenizers: [
    { type: 'Digits', individual_digits: false },
    { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false },
    { type: 'Split', pattern: { Regex: '[!?.,;:]' }, behavior: 'MergedWithPrevious', invert: false },
    { type: 'Split', pattern: { Regex: '\\p{Han}' }, behavior: 'Contiguous', invert: false },
    { type: 'Split', pattern: { String: '\t' }, behavior: 'Removed', invert: false },
    { type: 'Split', pattern: { Regex: llama3Regex }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] };
  v['llama3-behaviours'] = t;
  t = load('llama3');
  t.pre_tokenizer = { type: 'Sequence', pretokenizers: [
    { type: 'Digits', individual_digits: true },
    { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Isolated', invert: true },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] };
  v['llama3-digits-invert'] = t;
  // Patterns that match the empty string: each empty match is a split point, as the onig crate iterates.
  t = load('llama3');
  t.pre_tokenizer = { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: '\\b' }, behavior: 'Isolated', invert: false },
    { type: 'Split', pattern: { Regex: ' *' }, behavior: 'MergedWithPrevious', invert: false },
    { type: 'Split', pattern: { Regex: '(?=[A-Z])' }, behavior: 'MergedWithNext', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] };
  v['llama3-empty-matches'] = t;
  // Qwen3 with the other Unicode normal forms.
  t = load('qwen3');
  t.normalizer = { type: 'NFKC' };
  t.added_tokens.push({ id: 151669, content: '\ufb01le', single_word: false, lstrip: false, rstrip: false,
    normalized: true, special: false });
  v['qwen3-nfkc-added'] = t;
  // Mistral with a normalized added token: matched after Prepend and Replace have run.
  t = load('mistral');
  t.added_tokens.push({ id: 32000, content: 'hello world', single_word: false, lstrip: false, rstrip: false,
    normalized: true, special: false });
  v['mistral-added-normalized'] = t;
  t = load('qwen3');
  t.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'Replace', pattern: { String: '\t' }, content: '    ' }] };
  v['qwen3-nfd-replace'] = t;
  // Mistral's vocabulary the newer SentencePiece way: a Metaspace pre-tokenizer and decoder.
  for (const scheme of ['first', 'always', 'never']) {
    t = load('mistral');
    t.normalizer = null;
    t.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: scheme, split: scheme !== 'first' };
    t.decoder = { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: '\u2581',
      prepend_scheme: scheme, split: true }, { type: 'Fuse' }] };
    setFlags(t, '</s>', { lstrip: true, rstrip: true });
    v['mistral-metaspace-' + scheme] = t;
  }
  // stories260k with unknown tokens instead of byte fallback, fused and not.
  for (const fuse of [true, false]) {
    t = load('stories260k');
    t.model.byte_fallback = false;
    t.model.fuse_unk = fuse;
    t.decoder = { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
      { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 2, stop: 0 }] };
    v['stories260k-unk-' + (fuse ? 'fused' : 'single')] = t;
  }
  return v;
}

module.exports = { real, synthetic };
