#!/bin/sh
# Chat-template parity with Python's Jinja2 as transformers configures it: the cases of
# tests/tooling/chat_render.js plus tests/tooling/chat_snippets_python.json, re-rendered by
# chat_python_reference.py, then 3,000 random templates of chat_fuzz.py (fixed seeds); each set is
# compared by chat_parity_check.
# usage: chat_python_parity.sh NODE SOURCE_DIR WORK_DIR CHECKER
set -e
node=$1 src=$2 work=$3 checker=$4
mkdir -p "$work/js" "$work/py"
"$node" "$src/tests/tooling/chat_render.js" --work "$work/js"
python3 "$src/tests/engine/scripts/chat_python_reference.py" "$work/js/chat_templates.json" \
  "$work/js/chat_cases.jsonl" "$src/tests/tooling/chat_snippets_python.json" "$work/py"
"$checker" "$work/py/chat_templates.json" "$work/py/chat_cases.jsonl" "Python Jinja2"
for seed in 1 2 3; do
  python3 "$src/tests/engine/scripts/chat_fuzz.py" "$seed" 1000 "$work/fuzz$seed"
  "$checker" "$work/fuzz$seed/chat_templates.json" "$work/fuzz$seed/chat_cases.jsonl" "Python Jinja2 (fuzz seed $seed)"
done
