// Tokenizer parity corpus: fixed strings for each class of text plus seeded random mixes of those classes.
'use strict';

const specials = ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>',
  '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>', '<tool_call>', '<|fim_prefix|>',
  '<s>', '</s>', '<unk>', '<|reserved_special_token_0|>', '<|reserved_special_token_1|>',
  '<|reserved_special_token_2|>', '<|reserved_special_token_3|>', 'hello world'];

const fixed = [
  '', ' ', '  ', '     ', '\n', '\n\n\n', '\t', '\t\t x', '\r\n', 'a\r\nb\r\n', ' \n \t \n ', 'end   ', '   start',
  'Hello world', 'Hello, world!', 'Once upon a time, there was a little girl named Lily.',
  'The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!',
  "I'm sure they'll say it's fine, but we've seen what you'd do.", "WE'RE HERE. She'S IT'LL I'M",
  "don't DON'T Don'T 'tis 's 'S ſ 'ſ", 'a  b   c    d     e', 'word\tword\t\tword', 'line1\nline2\n\nline4',
  'def f(x):\n    return x ** 2  # square\n', 'int main() {\n\tprintf("%d\\n", 42);\n\treturn 0;\n}',
  'for (size_t i = 0; i < n; ++i) { a[i] += b[i] * c; }', '{"key": [1, 2.5, -3e10, null, true], "s": "x"}',
  '<div class="a b">Text &amp; more</div>', 'SELECT * FROM users WHERE id = 7;', 'x=>{return x?.y??z}',
  'https://example.com/path?q=1&r=two#frag', 'user@example.org', 'C:\\Users\\me\\file.txt', '$HOME/.config',
  '1234567890', '3.14159265358979', '1,000,000', '-42', '2024-01-15T10:30:00Z', '0x7fffffff', '1e-9',
  '123456789012345678901234567890', '٣٤٥٦ ١٢', '①②③ ½ ¾ Ⅻ', '२०२४', '೧೨೩',
  '中文测试', '我爱自然语言处理。', '日本語のテキストです。カタカナとひらがな。', '한국어 텍스트 처리', '漢字かな交じり文',
  'مرحبا بالعالم', 'السلام عليكم ورحمة الله', 'שלום עולם', 'नमस्ते दुनिया', 'สวัสดีครับ', 'Привет, мир!', 'Ελληνικά γράμματα',
  '👍', '👨‍👩‍👧‍👦', '🏳️‍🌈', '👋🏽 👋🏿', '🇫🇷🇯🇵', '1️⃣ #️⃣', '🧑‍💻 writes code', '❤️‍🔥', '😀😃😄😁',
  'e\u0301', 'caf\u00e9 cafe\u0301', 'n\u0303 \u00f1', 'A\u030a \u212b \u00c5', '\u1100\u1161\u11a8', 'Z\u0351\u0337a\u0316l\u0360g\u034fo',
  '\u0041\u0308\u0304', '\ufb01 ligature', '\u2126 ohm', 'x\u0085y', 'a\u00a0b', 'a\u3000b', 'a\u200bb', '\ufeffbom',
  'a\u2028b\u2029c', '\u000b\u000c', '\u0000nul', '\u007f', '\u{10ffff}', '\u{1f600}\u{e0067}', '\u{20000}\u{2a6d6}',
  '<|begin_of_text|>Hello', 'Hello<|begin_of_text|>', '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
  '<|im_start|><|im_start|>', '</s>', '<s>', '<unk>', 'a</s>b', ' </s> ', '<s>x</s>', 'text <|eot_id|> more',
  '<|begin_of_text', '<|im_start', '< s>', '<<s>>', '<think>reason</think>answer', '<tool_call>{"a":1}</tool_call>',
  '<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>',
  ' <|reserved_special_token_0|> x', 'x <|reserved_special_token_1|> y', 'x<|reserved_special_token_2|>y',
  'a <|reserved_special_token_2|> b', 'say hello world now', 'hello worldly', 'ahello world',
  'a'.repeat(200), 'ab'.repeat(150), ' '.repeat(64), '\n'.repeat(20), '9'.repeat(100), '!'.repeat(50),
  'supercalifragilisticexpialidocious '.repeat(5), 'aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ=',
  '...', '?!?!', '—–-', '“quoted” ‘single’', '«guillemets»', '¿Qué? ¡Sí!', '™®©', '→⇒∀∃∑√∞', '\\n literal',
  'Tab\tin\tmiddle', 'mixed 中文 and English', 'English العربية mixed', 'emoji👍in😀text', '12abc34def',
  'CamelCaseIdentifier snake_case_name kebab-case-name', 'ALLCAPS lowercase MiXeD', "l'amour d'été",
];

// mulberry32: a small seeded generator so that a seed always gives the same corpus.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const words = ['the', 'a', 'cat', 'Dog', 'running', 'quickly', "isn't", "we'll", 'THE', 'Hello', 'world', 'token',
  'tokenizer', 'über', 'naïve', 'façade', 'résumé', 'coöperate', 'ẞtraße', 'İstanbul', 'ǅemal'];
const code = ['{', '}', '()', '=>', '==', '!=', '&&', '||', '::', '->', '#include', 'std::vector<int>', 'i++', '/*', '*/',
  '//', '"str"', "'c'", '`tpl`', '0x1F', '[i]', ';', '\\', '$x', '@', '%', '^', '~'];
const spaces = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n', '\t\t', '    ', '\u00a0', '\u3000', '\u0085', '\u2009'];
const emojis = ['👍', '👨‍👩‍👧', '🏳️‍🌈', '👋🏽', '🇩🇪', '❤️', '🧑‍🚀', '😂', '🙏🏻', '✨', '👩‍❤️‍👨', '🐕‍🦺'];
const ranges = [[0x4e00, 0x9fff], [0x3040, 0x30ff], [0xac00, 0xd7a3], [0x0600, 0x06ff], [0x0590, 0x05ff],
  [0x0900, 0x097f], [0x0e00, 0x0e7f], [0x0400, 0x04ff], [0x0370, 0x03ff], [0x00a0, 0x024f], [0x2000, 0x2bff],
  [0x1f300, 0x1faff], [0x20000, 0x2a6df], [0xff00, 0xffef], [0x0020, 0x007e], [0x1100, 0x11ff]];
const marks = [0x0300, 0x0301, 0x0302, 0x0303, 0x0308, 0x030a, 0x0327, 0x0331, 0x0345, 0x064b, 0x093c, 0x0e31, 0x3099];

function generated(seed, count) {
  const r = rng(seed);
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const cp = ([lo, hi]) => String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
  const out = [];
  for (let n = 0; n < count; ++n) {
    let s = '';
    const parts = 1 + Math.floor(r() * 24);
    for (let k = 0; k < parts; ++k) {
      const c = r();
      if (c < 0.25) s += pick(words);
      else if (c < 0.35) s += pick(code);
      else if (c < 0.50) s += pick(spaces);
      else if (c < 0.58) s += String(Math.floor(r() * 10 ** (1 + Math.floor(r() * 8))));
      else if (c < 0.66) s += pick(emojis);
      else if (c < 0.72) s += pick(specials);
      else if (c < 0.80) s += pick(words) + String.fromCodePoint(pick(marks));
      else {
        const len = 1 + Math.floor(r() * 6);
        const range = pick(ranges);
        for (let i = 0; i < len; ++i) s += cp(range);
      }
      if (r() < 0.4) s += ' ';
    }
    out.push(s);
  }
  return out;
}

/// The corpus: the fixed strings, then `count` generated ones from `seed`.
function corpus(seed = 20240601, count = 320) {
  return fixed.concat(generated(seed, count));
}

module.exports = { corpus, specials, fixed };

// `node corpus.js [seed] [count]` prints the corpus as JSON lines (tests/tooling/corpus.jsonl is the default one).
if (require.main === module) {
  const [seed, count] = process.argv.slice(2).map(Number);
  for (const s of corpus(seed || undefined, count || undefined)) process.stdout.write(JSON.stringify(s) + '\n');
}
