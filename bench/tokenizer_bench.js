// Encode throughput of the official Hugging Face tokenizers library (npm binding) on a JSON-lines corpus:
// a first pass (cold caches), then `repeats` passes one string at a time (awaiting each encode, as a server
// tokenizing requests would), and the same strings in one encodeBatch call (parallel over all cores).
// usage: node bench/tokenizer_bench.js TOKENIZER_JSON CORPUS_JSONL REPEATS
'use strict';

const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, '..', 'tests', 'tooling', 'node_modules', 'tokenizers'));

(async () => {
  const [file, corpusFile, repeatsArg] = process.argv.slice(2);
  const repeats = Number(repeatsArg || 20);
  const texts = fs.readFileSync(corpusFile, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
  const bytes1 = texts.reduce((n, s) => n + Buffer.byteLength(s), 0);
  const tok = Tokenizer.fromFile(file);
  const row = (mode, n, bytes, s) => console.log(JSON.stringify({ mode, strings: n, bytes, seconds: +s.toFixed(4),
    mb_per_s: +(bytes / s / 1e6).toFixed(3), strings_per_s: +(n / s).toFixed(1) }));
  let t0 = process.hrtime.bigint();
  for (const t of texts) await tok.encode(t, null, { addSpecialTokens: true });
  row('hf_cold', texts.length, bytes1, Number(process.hrtime.bigint() - t0) / 1e9);
  t0 = process.hrtime.bigint();
  for (let r = 0; r < repeats; ++r)
    for (const t of texts) await tok.encode(t, null, { addSpecialTokens: true });
  row('hf_sequential', texts.length * repeats, bytes1 * repeats, Number(process.hrtime.bigint() - t0) / 1e9);
  const all = [];
  for (let r = 0; r < repeats; ++r) all.push(...texts);
  t0 = process.hrtime.bigint();
  const out = await tok.encodeBatch(all, { addSpecialTokens: true });
  if (out.length !== all.length) throw new Error('encodeBatch returned ' + out.length);
  row('hf_encodeBatch', all.length, bytes1 * repeats, Number(process.hrtime.bigint() - t0) / 1e9);
})();
