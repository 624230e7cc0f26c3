#!/usr/bin/env bash
# Checks `troupe tokenize` on the bundled tokenizer: exact ids, decoding, and clear errors with a non-zero
# exit for a missing file, bad JSON lines, invalid UTF-8 and bad id arrays.
# usage: tests/tooling/cli_errors.sh TROUPE_BINARY
set -u
troupe=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0

expect_out() {  # expect_out WANT ARGS...: exit 0 and stdout exactly WANT
  local want=$1; shift
  local got
  got=$("$troupe" tokenize "$@" 2>"$work/err")
  local rc=$?
  if [ $rc -ne 0 ] || [ "$got" != "$want" ]; then
    echo "FAIL: tokenize $* gave rc=$rc, output '$got' ($(cat "$work/err")), want '$want'"
    fails=$((fails + 1))
  fi
}

expect_error() {  # expect_error PATTERN ARGS...: non-zero exit and PATTERN on stderr
  local pattern=$1; shift
  "$troupe" tokenize "$@" >/dev/null 2>"$work/err"
  local rc=$?
  if [ $rc -eq 0 ] || ! grep -q -- "$pattern" "$work/err"; then
    echo "FAIL: tokenize $* gave rc=$rc, stderr '$(cat "$work/err")', want an error matching '$pattern'"
    fails=$((fails + 1))
  fi
}

expect_out '[1,346,306,414,263,304,341]' --text 'Hello world'
expect_out '[346,306,414,263,304,341]' --text 'Hello world' --no-special
expect_out '<s> Hello world' --decode --text '[1,346,306,414,263,304,341]'
expect_out 'Hello world' --decode --no-special --text '[1,346,306,414,263,304,341]'
expect_out '[1]' --text ''
printf '"Hello world"\n"a\\nb"\n' > "$work/in.jsonl"
expect_out $'[1,346,306,414,263,304,341]\n[1,261,13,430]' --jsonl "$work/in.jsonl"
printf '[1,346,306,414,263,304,341]\n[261,13,430]\n' > "$work/ids.jsonl"
expect_out $'"<s> Hello world"\n"a\\nb"' --decode --jsonl "$work/ids.jsonl"

expect_error 'nonexistent' --tokenizer /nonexistent/model --text hi
expect_error 'in.jsonl' --jsonl "$work/missing/in.jsonl"
printf '"ok"\n{"not": "a string"}\n' > "$work/bad.jsonl"
expect_error 'bad.jsonl:2' --jsonl "$work/bad.jsonl"
expect_error 'UTF-8' --text $'abc\xff'
expect_error 'UTF-8' --text $'\xc3'
expect_error 'not a 32-bit integer' --decode --text '[1, "x"]'
expect_error 'array' --decode --text 'not json'
expect_error 'exactly one' --text a --jsonl "$work/in.jsonl"

[ $fails -eq 0 ] && echo "tokenize CLI: all checks passed"
exit $fails
