#!/usr/bin/env bash
# Run ON the GPU machine (after scripts/device_prepare.sh here, carrying .device): checks that the
# binary built here finds the GPU at run time, runs the CPU-reference tests there, and compares
# `troupe generate` with transformers run live on the same machine. Prints a short table last.
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH="$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TROUPE_SOURCE_DIR="$PWD"
bin=.device/bin
# The binaries were built in another folder: make that path (and ../shared beside it) lead here.
built_at=$(cat .device/source_dir)
if [ "$(readlink -f "$built_at" 2>/dev/null)" != "$PWD" ]; then
  mkdir -p "$(dirname "$built_at")"
  [ -e "$built_at" ] || ln -s "$PWD" "$built_at"
fi
[ -e "$(dirname "$built_at")/shared" ] || ln -s "$PWD/.device/shared" "$(dirname "$built_at")/shared"
declare -A result
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== troupe devices"
$bin/troupe devices | tee /tmp/devices.txt
grep -q '^gpu 0:' /tmp/devices.txt && result[gpu_found]=yes || result[gpu_found]=NO

echo "== CPU reference tests on this host"
for t in engine_test_golden_stories engine_test_hf_fixtures engine_test_llama_model; do
  # The test binaries locate fixtures through the source path compiled in; run from a link there.
  if $bin/$t >/tmp/$t.log 2>&1; then result[$t]=pass; else result[$t]=FAIL; tail -20 /tmp/$t.log; fi
done

echo "== troupe generate vs transformers, live, greedy 64 tokens"
prompts=("Once upon a time" "Lily and Tom went to the park." "The dog ran to")
match=0
for p in "${prompts[@]}"; do
  ours=$($bin/troupe generate --device cpu --prompt "$p" --max-tokens 64 --temperature 0 --json)
  theirs=$(PROMPT="$p" python3 - <<'PY'
import json, os, torch
from transformers import AutoTokenizer, LlamaForCausalLM
m = LlamaForCausalLM.from_pretrained("models/stories260k", dtype=torch.float32).eval()
t = AutoTokenizer.from_pretrained("models/stories260k")
ids = t(os.environ["PROMPT"], return_tensors="pt").input_ids
out = m.generate(ids, max_new_tokens=64, do_sample=False)
print(json.dumps({"prompt_ids": ids[0].tolist(), "output_ids": out[0, ids.shape[1]:].tolist()}))
PY
)
  same=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(int(a["prompt_ids"]==b["prompt_ids"] and a["output_ids"]==b["output_ids"]))' "$ours" "$theirs")
  echo "$p -> equal=$same"
  match=$((match + same))
done
result[generate_vs_transformers]="$match/${#prompts[@]} equal"

echo
echo "| check | result |"
echo "| --- | --- |"
for k in gpu_found engine_test_golden_stories engine_test_hf_fixtures engine_test_llama_model generate_vs_transformers; do
  echo "| $k | ${result[$k]} |"
done
