#!/usr/bin/env bash
# The one command run on the lent GPU machine to (re)make tests/fixtures/hf: builds the fixtures with torch and
# transformers and packs them into $OUT/hf_fixtures.tar.gz (with the log). Unpack here with:
#   rm -rf tests/fixtures/hf/*/ && tar -C tests/fixtures -xzf <files_at>/hf_fixtures.tar.gz
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?OUT names the folder that comes back}
work=$(mktemp -d)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt" || true
python3 -c 'import torch, transformers, safetensors; print(torch.__version__, transformers.__version__, safetensors.__version__)'
PYTHONUNBUFFERED=1 python3 scripts/make_hf_fixtures.py --out "$work/hf" "$@" 2>&1 | tee "$out/make_hf_fixtures.log"
tar -C "$work" -czf "$out/hf_fixtures.tar.gz" hf
ls -l "$out"
