#!/usr/bin/env bash
# Run HERE before a GPU-machine call: builds (CUDA on), then gathers the program, the test binaries
# that the GPU check runs, and the Debian runtime libraries they need into .device/ (git-ignored),
# which the call carries (`carry: [".device"]`). The GPU machine has none of our Debian libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target troupe engine_test_hf_fixtures engine_test_golden_stories \
  engine_test_llama_model >/dev/null
rm -rf .device && mkdir -p .device/bin .device/lib
cp build/troupe build/tests/engine_test_hf_fixtures build/tests/engine_test_golden_stories \
   build/tests/engine_test_llama_model .device/bin/
# Every shared library the binaries load that is not part of the base C runtime.
for bin in .device/bin/*; do
  ldd "$bin" | awk '$3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r soname path; do
  case "$soname" in libc.so*|libm.so*|libpthread*|libdl*|librt*|ld-linux*|libstdc++*|libgcc_s*) continue;; esac
  cp "$(readlink -f "$path")" ".device/lib/$soname"
done
# The golden file the tests read from ../shared (which does not travel), and where the binaries
# expect the sources (their paths are compiled in).
mkdir -p .device/shared/golden
cp ../shared/golden/stories260k_hf.json .device/shared/golden/
echo "$PWD" > .device/source_dir
du -sh .device
