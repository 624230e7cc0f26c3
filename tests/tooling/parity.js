// Tokenizer parity: encodes and decodes the corpus with the official Hugging Face library and with
// `troupe tokenize`, for the real tokenizer files and synthetic variants; exits 1 on the first difference.
// usage: node parity.js --troupe BIN --work DIR [--seed N] [--count N] [--only NAME]
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : def;
}

let Tokenizer;
try {
  ({ Tokenizer } = require('tokenizers'));
  for (const f of Object.values(require('./variants.js').real))
    if (!fs.existsSync(f)) throw new Error(f + ' is missing');
} catch (e) {
  console.error('FAIL: the npm test tooling is missing (' + e.message.split('\n')[0] + ').\n' +
    'Run `make deps` (or `npm install` in tests/tooling) to install the official tokenizers library.');
  process.exit(1);
}
const { corpus } = require('./corpus.js');
const { real, synthetic } = require('./variants.js');

const troupe = arg('troupe');
const work = arg('work', fs.mkdtempSync('/tmp/troupe-parity-'));
const seed = Number(process.env.TROUPE_TOKENIZER_SEED || arg('seed', 20240601));
const count = Number(arg('count', 320));
const only = arg('only');
fs.mkdirSync(work, { recursive: true });

const writeLines = (file, rows) => fs.writeFileSync(file, rows.map((r) => JSON.stringify(r) + '\n').join(''));

function runTroupe(args) {
  try {
    const out = execFileSync(troupe, ['tokenize', ...args], { maxBuffer: 1 << 28, encoding: 'utf8' });
    return out.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
  } catch (e) {
    throw new Error('troupe ' + args.join(' ') + ' failed: ' + (e.stderr || e.message));
  }
}

// Random id sequences that stress the decoders: any id, byte tokens, specials.
function randomIdLists(vocabSize, specialIds, byteIds, n, s) {
  let a = s >>> 0;
  const r = () => { a = (Math.imul(a ^ (a >>> 15), 2246822507) + 0x9e3779b9) >>> 0; return a / 4294967296; };
  const lists = [];
  for (let k = 0; k < n; ++k) {
    const len = 1 + Math.floor(r() * 24);
    const ids = [];
    for (let i = 0; i < len; ++i) {
      const c = r();
      if (c < 0.2 && byteIds.length) ids.push(byteIds[Math.floor(r() * byteIds.length)]);
      else if (c < 0.3 && specialIds.length) ids.push(specialIds[Math.floor(r() * specialIds.length)]);
      else ids.push(Math.floor(r() * vocabSize));
    }
    lists.push(ids);
  }
  return lists;
}

function firstDiff(name, what, inputs, want, got) {
  for (let i = 0; i < inputs.length; ++i) {
    if (JSON.stringify(want[i]) !== JSON.stringify(got[i])) {
      console.error(`FAIL ${name} ${what}: first difference at item ${i}\n  input: ${JSON.stringify(inputs[i])}\n` +
        `  official: ${JSON.stringify(want[i])}\n  troupe:   ${JSON.stringify(got[i])}`);
      return true;
    }
  }
  if (want.length !== got.length) {
    console.error(`FAIL ${name} ${what}: ${got.length} results for ${want.length} inputs`);
    return true;
  }
  return false;
}

async function check(name, file, texts) {
  const hf = Tokenizer.fromFile(file);
  const withSp = [], without = [];
  for (const t of texts) {
    withSp.push((await hf.encode(t, null, { addSpecialTokens: true })).getIds());
    without.push((await hf.encode(t, null, { addSpecialTokens: false })).getIds());
  }
  const vocab = hf.getVocabSize(true);
  const addedIds = Object.values(hf.getVocab(true)).filter((id) => id >= hf.getVocabSize(false));
  const byteIds = [];
  for (let b = 0; b < 256; ++b) {
    const id = hf.tokenToId('<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>');
    if (id !== null && id !== undefined) byteIds.push(id);
  }
  const idLists = withSp.concat(randomIdLists(vocab, addedIds.concat([0, 1, 2]), byteIds, 300, seed));
  const dec = [], decSkip = [];
  for (const ids of idLists) {
    dec.push(await hf.decode(ids, false));
    decSkip.push(await hf.decode(ids, true));
  }
  const corpusFile = path.join(work, 'corpus.jsonl');
  const idsFile = path.join(work, name + '.ids.jsonl');
  writeLines(idsFile, idLists);
  let bad = false;
  bad = firstDiff(name, 'encode', texts, withSp, runTroupe(['--tokenizer', file, '--jsonl', corpusFile])) || bad;
  bad = firstDiff(name, 'encode --no-special', texts, without,
    runTroupe(['--tokenizer', file, '--jsonl', corpusFile, '--no-special'])) || bad;
  bad = firstDiff(name, 'decode', idLists, dec, runTroupe(['--tokenizer', file, '--jsonl', idsFile, '--decode'])) || bad;
  bad = firstDiff(name, 'decode --no-special', idLists, decSkip,
    runTroupe(['--tokenizer', file, '--jsonl', idsFile, '--decode', '--no-special'])) || bad;
  const tokens = withSp.reduce((n, x) => n + x.length, 0);
  console.log(`${bad ? 'FAIL' : 'ok  '} ${name}: ${texts.length} strings (${tokens} tokens), ` +
    `${idLists.length} id lists decoded, vocab ${vocab}`);
  return !bad;
}

(async () => {
  const texts = corpus(seed, count);
  const committed = path.join(__dirname, 'corpus.jsonl');
  const defaults = corpus();
  if (fs.readFileSync(committed, 'utf8') !== defaults.map((t) => JSON.stringify(t) + '\n').join('')) {
    console.error('FAIL: tests/tooling/corpus.jsonl (read by the C++ tests) differs from corpus.js; ' +
      'regenerate it: node tests/tooling/corpus.js > tests/tooling/corpus.jsonl');
    process.exit(1);
  }
  writeLines(path.join(work, 'corpus.jsonl'), texts);
  const files = Object.entries(real);
  for (const [name, tok] of Object.entries(synthetic())) {
    const f = path.join(work, name + '.json');
    fs.writeFileSync(f, JSON.stringify(tok));
    files.push([name, f]);
  }
  let ok = true;
  for (const [name, file] of files) {
    if (only && name !== only) continue;
    try {
      ok = (await check(name, file, texts)) && ok;
    } catch (e) {
      console.error(`FAIL ${name}: ${e.message}`);
      ok = false;
    }
  }
  console.log(ok ? `tokenizer parity: all equal (seed ${seed})` : `tokenizer parity: differences found (seed ${seed})`);
  process.exit(ok ? 0 : 1);
})();
