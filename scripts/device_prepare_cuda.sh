#!/usr/bin/env bash
# Run HERE before a GPU-machine call for the CUDA backend: builds in build-cuda (CUDA on), then gathers
# the CUDA test binaries, the benchmark and the Debian runtime libraries they need into .device-cuda/
# (ignored through .git/info/exclude), which the call carries (`carry: [".device-cuda"]`).
# cuBLAS is not carried (540 MB): scripts/gpu_cuda.sh finds the GPU machine's own copy.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=$(git rev-parse --git-path info/exclude)
grep -qxF '/.device-cuda/' "$exclude" 2>/dev/null || echo '/.device-cuda/' >> "$exclude"
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release >/dev/null
# TARGETS (default: every CUDA test, cuda_bench and troupe) picks what to build and carry.
read -r -a targets <<< "${TARGETS:-kernels_test_cuda_ops kernels_test_cuda_attention kernels_test_cuda_model kernels_test_cuda_graphs kernels_test_cuda_batching kernels_test_cuda_gated kernels_test_cuda_sampling cuda_bench troupe}"
cmake --build build-cuda -j "${JOBS:-2}" --target "${targets[@]}" >/dev/null
rm -rf .device-cuda && mkdir -p .device-cuda/bin .device-cuda/lib .device-cuda/peer
for t in "${targets[@]}"; do
  for f in build-cuda/tests/$t build-cuda/bench/$t build-cuda/$t; do [ -f "$f" ] && cp "$f" .device-cuda/bin/ && break; done
done
# The transformers peer (../shared does not travel): scripts/gpu_cuda.sh's offline step runs it.
peer=../shared/peer/hf_peer.py
[ -f "$peer" ] && cp "$peer" .device-cuda/peer/
strip --strip-unneeded .device-cuda/bin/*
for bin in .device-cuda/bin/*; do
  ldd "$bin" | awk '$3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r soname path; do
  case "$soname" in
    libc.so*|libm.so*|libpthread*|libdl*|librt*|ld-linux*|libstdc++*|libgcc_s*|libcuda.so*|libcublas*|libcudart*) continue;;
  esac
  cp "$(readlink -f "$path")" ".device-cuda/lib/$soname"
done
# Compressed, to stay under the call's 64 MiB (scripts/gpu_cuda.sh unpacks it).
tar czf .device-cuda/lib.tgz -C .device-cuda lib && rm -rf .device-cuda/lib
# xz: ten statically linked binaries are 47 MB with gzip, 32 MB with xz.
tar cJf .device-cuda/bin.txz -C .device-cuda bin && rm -rf .device-cuda/bin
echo "$PWD" > .device-cuda/source_dir
git rev-parse --short HEAD > .device-cuda/commit
du -sh .device-cuda
