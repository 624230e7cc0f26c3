#!/usr/bin/env bash
# Run ON the GPU machine (after scripts/device_prepare_cuda.sh here, carrying .device-cuda): every CUDA
# test, the CUDA model against transformers in bf16 on random-weight models, and the benchmarks
# (decode-1 and prefill-2k against the card's measured ceilings). Logs go to $OUT; a table is last.
# STEPS (default "tests hf generate bench"; also "serve": `troupe serve --device auto` answers a
# completion, streamed and not, with the text `troupe generate --device auto` gives; "ops": time each op alone;
# "attention": decode attention alone against the copy bandwidth (cuda_bench --attention), and reads alone
# (cuda_bench --read-bandwidth); "prefill-attention":
# the prefill attention kernel alone (cuda_bench --prefill-attention); "offline": `troupe bench
# offline --dummy llama2-7b` and then the transformers peer (.device-cuda/peer/hf_peer.py) on the same
# workload, N and NOUT requests and output tokens, default 256 and 256; "matmul": cuBLASLt tuned per shape against
# cublasGemmEx, decode-1, prefill-2k and offline-256 each way, REPEAT times; "ab": settings switched by
# environment, alternating, see below) picks parts.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_cuda_out}
mkdir -p "$OUT"
STEPS=${STEPS:-tests hf generate bench}
bin=.device-cuda/bin
[ -d .device-cuda/lib ] || tar xzf .device-cuda/lib.tgz -C .device-cuda
if [ ! -d .device-cuda/bin ]; then  # xz-compressed; Python's lzma where the machine has no xz
  if command -v xz >/dev/null; then tar xJf .device-cuda/bin.txz -C .device-cuda
  else python3 -c 'import tarfile; tarfile.open(".device-cuda/bin.txz").extractall(".device-cuda")'; fi
fi
# cuBLAS from the machine's CUDA toolkit or its PyTorch wheels.
cublas=$(find /usr/local/cuda*/ /usr/lib /opt -name 'libcublasLt.so.13*' 2>/dev/null | head -1)
[ -n "$cublas" ] || { echo "no libcublasLt.so.13 on this machine"; exit 1; }
export LD_LIBRARY_PATH="$PWD/.device-cuda/lib:$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The binaries were built in another folder: make that path lead here (fixtures are found through it).
built_at=$(cat .device-cuda/source_dir)
if [ "$(readlink -f "$built_at" 2>/dev/null)" != "$PWD" ]; then
  mkdir -p "$(dirname "$built_at")"
  [ -e "$built_at" ] || ln -s "$PWD" "$built_at"
fi
declare -A result
order=()
note() { result[$1]=$2; order+=("$1"); }
# A cuda_bench log's decode-1 and prefill rows in one line: what each measured and its fraction.
bench_summary() { grep -E '^\| (decode-1|prefill)' "$1" | awk -F'|' '{print $2 ":" $3 "(" $5 ")"}' | sed 's/  */ /g' | paste -sd';'; }
card=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
echo "card: $card; commit $(cat .device-cuda/commit)"

if [[ " $STEPS " == *" tests "* ]]; then
  for t in kernels_test_cuda_ops kernels_test_cuda_attention kernels_test_cuda_model kernels_test_cuda_graphs kernels_test_cuda_batching kernels_test_cuda_gated kernels_test_cuda_sampling; do
    [ -x "$bin/$t" ] || continue  # not carried this time (TARGETS)
    start=$(date +%s)
    filter=()  # OPS_FILTER: a Catch2 test spec for the ops test (its every-tiling matmul case takes minutes)
    [ "$t" = kernels_test_cuda_ops ] && [ -n "${OPS_FILTER:-}" ] && filter=("$OPS_FILTER")
    if $bin/$t "${filter[@]}" -s -r compact >"$OUT/$t.log" 2>&1; then s=pass; else s=FAIL; grep -B3 -A12 -E "FAILED|failed" "$OUT/$t.log" | head -60; fi
    grep -E "^model " "$OUT/$t.log" | head -40
    note "$t" "$s ($(tail -1 "$OUT/$t.log" | cut -c1-90)) $(( $(date +%s) - start ))s"
  done
fi

if [[ " $STEPS " == *" hf "* ]]; then
  for shape in gqa64 mha128; do
    dir=/tmp/hf_$shape
    if SHAPE=$shape DIR=$dir python3 - >"$OUT/hf_$shape.py.log" 2>&1 <<'PY'
import os, numpy as np, torch
from transformers import LlamaConfig, LlamaForCausalLM
shape, d = os.environ["SHAPE"], os.environ["DIR"]
torch.manual_seed(0)
if shape == "gqa64":
    cfg = LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=4, num_attention_heads=16,
                      num_key_value_heads=4, head_dim=64, vocab_size=4096, max_position_embeddings=2048,
                      rms_norm_eps=1e-5, rope_theta=10000.0)
else:
    cfg = LlamaConfig(hidden_size=1024, intermediate_size=2752, num_hidden_layers=4, num_attention_heads=8,
                      num_key_value_heads=8, head_dim=128, vocab_size=4096, max_position_embeddings=2048,
                      rms_norm_eps=1e-5, rope_theta=500000.0)
model = LlamaForCausalLM(cfg)
with torch.no_grad():  # weights of a trained model's scale, so logits are not flat
    for name, p in model.named_parameters():
        if p.dim() == 2:
            p.normal_(0.0, 0.6 / p.shape[1] ** 0.5 if "embed" not in name else 1.0)
model = model.to(torch.bfloat16).cuda().eval()
model.save_pretrained(d, safe_serialization=True)
ids = torch.randint(3, cfg.vocab_size, (1, 300), generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    logits = model(ids.cuda()).logits[0].float().cpu().numpy()
ids[0].numpy().astype(np.int32).tofile(os.path.join(d, "ids.i32"))
logits.astype(np.float32).tofile(os.path.join(d, "hf_logits.f32"))
print("saved", d, logits.shape)
PY
    then
      if TROUPE_HF_DIR=$dir $bin/kernels_test_cuda_model "[.hf]" -s >"$OUT/hf_$shape.log" 2>&1; then s=pass; else s=FAIL; tail -30 "$OUT/hf_$shape.log"; fi
      note "transformers bf16 $shape" "$s: $(grep -E '^hf .* chunk 0' "$OUT/hf_$shape.log" | sed 's/^hf [^ ]* //')"
    else
      tail -20 "$OUT/hf_$shape.py.log"
      note "transformers bf16 $shape" "python failed"
    fi
  done
fi

if [[ " $STEPS " == *" generate "* ]]; then
  # troupe generate --device cuda (bf16) against transformers' greedy ids in bf16 and float32, 64 tokens.
  prompts=("Once upon a time" "Lily and Tom went to the park." "The dog ran to")
  same_bf16=0; same_f32=0
  for p in "${prompts[@]}"; do
    ours=$($bin/troupe generate --model models/stories260k --device cuda --dtype bfloat16 --prompt "$p" \
           --max-tokens 64 --temperature 0 --ignore-eos --json 2>>"$OUT/generate.log")
    echo "$ours" >> "$OUT/generate.log"
    verdict=$(OURS="$ours" python3 - 2>>"$OUT/generate.log" <<'PY'
import json, os, torch
from transformers import LlamaForCausalLM
ours = json.loads(os.environ["OURS"])
ids = torch.tensor([ours["prompt_ids"]]).cuda()
res = []
for dt in (torch.bfloat16, torch.float32):
    m = LlamaForCausalLM.from_pretrained("models/stories260k", dtype=dt).cuda().eval()
    out = m.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False)[0, ids.shape[1]:].tolist()
    n = next((i for i, (a, b) in enumerate(zip(out, ours["output_ids"])) if a != b), len(out))
    res.append(f"{int(out == ours['output_ids'])}:{n}")
print(" ".join(res))
PY
)
    echo "generate '$p': equal:first-difference bf16 $(echo $verdict | cut -d' ' -f1), f32 $(echo $verdict | cut -d' ' -f2)" | tee -a "$OUT/generate.log"
    [[ "$verdict" == 1:* ]] && same_bf16=$((same_bf16 + 1))
    [[ "$verdict" == *" 1:"* ]] && same_f32=$((same_f32 + 1))
  done
  note "generate --device cuda, stories260k" "greedy 64 tokens equal to transformers bf16 in $same_bf16/3, float32 in $same_f32/3"
fi

if [[ " $STEPS " == *" serve "* ]]; then
  # The server on the GPU through --device auto: one completion, streamed and not, equal to generate's.
  want=$($bin/troupe generate --device auto --prompt "Once upon a time" --max-tokens 48 --temperature 0 \
           --json 2>"$OUT/generate_auto.err" | python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')
  $bin/troupe serve --device auto --port 8123 >"$OUT/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do curl -sf 127.0.0.1:8123/health >/dev/null && break; sleep 0.5; done
  body='{"prompt": "Once upon a time", "max_tokens": 48, "temperature": 0}'
  got=$(curl -s 127.0.0.1:8123/v1/completions -d "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
  streamed=$(curl -sN 127.0.0.1:8123/v1/completions -d "${body%\}}, \"stream\": true}" | python3 -c '
import json, sys
print("".join(json.loads(l[6:])["choices"][0]["text"] for l in sys.stdin if l.startswith("data: {")))')
  kill -TERM $pid; wait $pid; rc=$?
  device=$(grep -m1 "device:" "$OUT/serve.log")
  kv=$(grep -m1 -o "KV cache: [0-9]* blocks of [0-9]* = [0-9]* tokens" "$OUT/serve.log")
  same=no; [ "$got" == "$want" ] && [ "$streamed" == "$want" ] && [ -n "$want" ] && same=yes
  echo "generate --device auto: $want"; echo "serve: $got"; cat "$OUT/serve.log"
  note "serve --device auto" "${device#troupe: }; ${kv:-KV cache size not logged}; completion and stream equal generate's: $same; exit $rc"
fi

if [[ " $STEPS " == *" ops "* ]]; then
  $bin/cuda_bench --ops --shape "${OPS_SHAPE:-llama2-7b}" 2>&1 | tee "$OUT/ops.log"
fi

if [[ " $STEPS " == *" gemm "* ]]; then
  $bin/cuda_bench --gemm-sweep 2>&1 | tee "$OUT/gemm.log"
fi

if [[ " $STEPS " == *" attention "* ]]; then
  # Decode attention alone (cuda_bench --attention): TB/s against the copy bandwidth, batches of 64 and 256.
  $bin/cuda_bench --attention 2>&1 | tee "$OUT/attention.log"
  note "decode attention, 64 and 256 sequences" "$(grep -E '^\| (MHA|GQA)[^|]*\| (64|256) ' "$OUT/attention.log" |
    awk -F'|' '{print $7}' | sort -n | sed -n '1p;$p' | paste -sd- | tr -d ' ') TB/s; see attention.log"
  # What reads alone reach (in order, and in random 256/512-byte chunks as attention reads pages).
  $bin/cuda_bench --read-bandwidth 2>&1 | tee "$OUT/read_bandwidth.log"
  note "read bandwidth (in order / random 256-byte chunks)" "$(grep -E '^\| read, 256' "$OUT/read_bandwidth.log" |
    awk -F'|' '{print $3}' | paste -sd/ | tr -d ' ')"
fi

if [[ " $STEPS " == *" prefill-attention "* ]]; then
  # The prefill attention kernel alone (cuda_bench --prefill-attention): offline-256's and prefill-2k's shapes.
  $bin/cuda_bench --prefill-attention 2>&1 | tee "$OUT/prefill_attention.log"
  if [ -n "${NCU_KERNELS:-}" ] && command -v ncu >/dev/null; then  # e.g. "prefill_kernel rows_kernel"
    for k in $NCU_KERNELS; do  # the first call of each (offline-256's first-wave shape), counters read by Nsight Compute
      ncu --clock-control none -k "regex:$k" -c 1 --section SpeedOfLight --section Occupancy --section WarpStateStats \
        --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section SchedulerStats \
        $bin/cuda_bench --prefill-attention >"$OUT/ncu_$k.log" 2>&1 || tail -5 "$OUT/ncu_$k.log"
    done
  fi
fi

if [[ " $STEPS " == *" bench "* ]]; then
  # BENCH_ARGS: runs separated by ';' (default: Llama-2-7B with and without CUDA graphs, Llama-3-8B).
  IFS=';' read -r -a bench_args <<< "${BENCH_ARGS:---shape llama2-7b;--shape llama2-7b --no-graphs;--shape llama3-8b}"
  for args in "${bench_args[@]}"; do
    log="$OUT/bench_$(echo $args | tr -c 'a-z0-9' '_').log"
    $bin/cuda_bench $args >"$log" 2>&1 || echo "cuda_bench $args failed: $(tail -3 "$log")"
    cat "$log"
    note "cuda_bench $args" "$(bench_summary "$log")"
  done
  # decode-1 through the engine (scheduler, sampling and step overlap as served): one 128-token prompt,
  # 256 tokens; its wall time includes the prompt's step. ENGINE_DECODE1=0 skips it.
  if [ "${ENGINE_DECODE1:-1}" != 0 ]; then
    timeout 120 $bin/troupe bench offline --dummy llama2-7b --device cuda --num-prompts 1 --min-prompt 128 \
      --max-prompt 128 --output-len 256 >"$OUT/engine_decode1.log" 2>&1
    r=$(grep '^RESULT offline' "$OUT/engine_decode1.log" | head -1)
    note "decode-1 through the engine (troupe bench offline, 1 x 128 -> 256)" "${r#RESULT offline }"
  fi
fi

if [[ " $STEPS " == *" ab "* ]]; then
  # One binary, settings switched by environment, alternating in one call: AB holds the settings
  # (each "NAME=V,NAME2=V2", space-separated, e.g. "TROUPE_ROPE_FUSE=0 TROUPE_ROPE_FUSE=1"), run
  # REPEAT times each (default 2) with `cuda_bench $AB_ARGS` (default --shape llama2-7b); decode-1 and
  # prefill-2k of every run are noted, the logs appended to $OUT/ab.log.
  [ -n "${AB:-}" ] || { echo "STEPS=ab needs AB (the settings to alternate)"; note "ab" "skipped: AB unset"; }
  for r in $(seq 1 "${REPEAT:-2}"); do
    for setting in ${AB:-}; do
      log=$(mktemp)
      env ${setting//,/ } $bin/cuda_bench ${AB_ARGS:---shape llama2-7b} >"$log" 2>&1 || echo "cuda_bench ($setting) failed: $(tail -3 "$log")"
      { echo "=== cuda_bench ${AB_ARGS:---shape llama2-7b}, $setting, run $r"; cat "$log"; } >> "$OUT/ab.log"
      note "$setting, run $r" "$(bench_summary "$log")"
      rm -f "$log"
    done
  done
fi

if [[ " $STEPS " == *" matmul "* ]]; then
  # Products of several rows through cuBLASLt tuned per shape (TROUPE_MATMUL=lt, the default: up to 512
  # rows; lt-all: every size) against cublasGemmEx's default algorithm (=gemmex), in one call: decode-1
  # and prefill-2k (cuda_bench), then offline-256 (`troupe bench offline`, ours only), alternating over
  # MODES (default "gemmex lt"), REPEAT times each (default 2); every log is appended to $OUT/matmul.log.
  shape=${MATMUL_SHAPE:-llama2-7b}
  for r in $(seq 1 "${REPEAT:-2}"); do
    for mode in ${MODES:-gemmex lt}; do
      log=$(mktemp)
      TROUPE_MATMUL=$mode $bin/cuda_bench --shape "$shape" >"$log" 2>&1 || echo "cuda_bench ($mode) failed: $(tail -3 "$log")"
      { echo "=== cuda_bench --shape $shape, TROUPE_MATMUL=$mode, run $r"; cat "$log"; } >> "$OUT/matmul.log"
      d=$(grep -E '^\| decode-1' "$log" | awk -F'|' '{print $3}' | xargs)
      p=$(grep -E '^\| prefill' "$log" | awk -F'|' '{print $3}' | xargs)
      tuned=$(grep -o 'tuned in [0-9]* ms' "$log" | head -1)
      TROUPE_MATMUL=$mode timeout "${OFFLINE_TIMEOUT:-300}" $bin/troupe bench offline --dummy "$shape" --device cuda \
        ${OFFLINE_ARGS:-} >"$log" 2>&1
      { echo "=== troupe bench offline --dummy $shape, TROUPE_MATMUL=$mode, run $r"; cat "$log"; } >> "$OUT/matmul.log"
      o=$(grep '^RESULT offline' "$log" | grep -o 'out_tok_s=[0-9.]* [^ ]* seconds=[0-9.]*')
      warm=$(grep -o 'after the warm-up, matmul tuning[^;]*' "$log" | grep -o '[0-9]* shapes tuned in [0-9]* ms')
      run=$(grep -o 'after the run, matmul tuning[^;]*' "$log" | grep -o '[0-9]* shapes tuned in [0-9]* ms')
      note "$shape $mode, run $r" "decode-1 $d; prefill-2k $p${tuned:+ ($tuned)}; offline-256 ${o:-failed}${warm:+; start-up: $warm, after the run: $run}"
      rm -f "$log"
    done
  done
fi

if [[ " $STEPS " == *" offline-profile "* ]]; then
  # Where offline-256's GPU time goes: every op timed (no CUDA graphs, so decode steps show op by op).
  TROUPE_CUDA_GRAPHS=0 timeout "${OFFLINE_TIMEOUT:-300}" $bin/troupe bench offline --dummy "${PROFILE_SHAPE:-llama2-7b}" \
    --device cuda --profile-run ${OFFLINE_ARGS:-} 2>&1 | tee "$OUT/offline_profile.log"
  note "offline profile (no graphs)" "$(grep -o '[0-9.]*% busy' "$OUT/offline_profile.log" | head -1); see offline_profile.log"
fi

if [[ " $STEPS " == *" offline "* ]]; then
  N=${N:-256}; NOUT=${NOUT:-256}
  timeout "${OFFLINE_TIMEOUT:-300}" $bin/troupe bench offline --dummy llama2-7b --device cuda --num-prompts "$N" \
    --output-len "$NOUT" --profile-decode "${PROFILE_DECODE:-64}" ${OFFLINE_ARGS:-} 2>&1 | tee "$OUT/offline.log"
  ours=$(grep '^RESULT offline' "$OUT/offline.log" | head -1)
  busy=$(grep -o '[0-9.]*% busy' "$OUT/offline.log" | head -1)
  if [ -f .device-cuda/peer/hf_peer.py ] && [ "${PEER:-1}" != 0 ]; then  # PEER=0: ours only
    N=$N NOUT=$NOUT PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-330}" python3 .device-cuda/peer/hf_peer.py \
      >"$OUT/peer.log" 2>&1
    grep '^RESULT' "$OUT/peer.log"
    tail -5 "$OUT/peer.log"
  fi
  peer=$(grep 'hf_continuous_batching' "$OUT/peer.log" 2>/dev/null | head -1)
  ours_tps=$(echo "$ours" | grep -o 'out_tok_s=[0-9.]*' | cut -d= -f2)
  peer_tps=$(echo "$peer" | grep -o '"out_tok_s": [0-9.]*' | cut -d' ' -f2)
  ratio=$(python3 -c "print(f'{$ours_tps/$peer_tps:.1f}x')" 2>/dev/null || echo "n/a")
  note "offline N=$N NOUT=$NOUT: troupe" "${ours#RESULT offline }"
  note "offline N=$N NOUT=$NOUT: transformers generate_batch" "out_tok_s=${peer_tps:-n/a} ($(echo "$peer" | grep -o '"seconds": [0-9.]*'))"
  note "offline N=$N NOUT=$NOUT: troupe / transformers" "$ratio"
  if [ -n "$busy" ]; then note "profiled decode of ${PROFILE_DECODE:-64} requests" "$busy"; fi
  for shape in ${EXTRA_SHAPES:-}; do  # e.g. llama3-8b (GQA): ours only, the peer has the Llama-2 shape
    timeout "${OFFLINE_TIMEOUT:-300}" $bin/troupe bench offline --dummy "$shape" --device cuda --num-prompts "$N" \
      --output-len "$NOUT" 2>&1 | tee "$OUT/offline_$shape.log"
    r=$(grep '^RESULT offline' "$OUT/offline_$shape.log" | head -1)
    note "offline N=$N NOUT=$NOUT: troupe $shape" "${r#RESULT offline }"
  done
fi

echo
echo "| check ($card) | result |"
echo "| --- | --- |"
for k in "${order[@]}"; do echo "| $k | ${result[$k]} |"; done
